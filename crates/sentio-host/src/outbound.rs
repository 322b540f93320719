//! Outbound HTTP from components, as Spin allows it: only to hosts listed in the component's
//! `allowed_outbound_hosts` (`http://127.0.0.1:3000`, `https://*.example.com`, `*://*:*`).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// One `allowed_outbound_hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: Option<String>,
    host: HostPattern,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(String),
    /// `*.example.com`: any subdomain.
    Suffix(String),
}

impl AllowedHost {
    pub fn parse(entry: &str) -> Result<Self, String> {
        let (scheme, rest) = entry
            .split_once("://")
            .ok_or_else(|| format!("`{entry}` needs a scheme, e.g. https://{entry}"))?;
        let scheme = match scheme {
            "*" => None,
            "http" | "https" => Some(scheme.to_owned()),
            other => return Err(format!("`{entry}`: scheme `{other}` is not http or https")),
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, "*")) => (h, None),
            Some((h, p)) => (
                h,
                Some(
                    p.parse::<u16>()
                        .map_err(|_| format!("`{entry}`: bad port `{p}`"))?,
                ),
            ),
            None => (
                rest,
                match scheme.as_deref() {
                    Some("http") => Some(80),
                    Some("https") => Some(443),
                    _ => None,
                },
            ),
        };
        let host = match host {
            "*" => HostPattern::Any,
            h if h.starts_with("*.") => HostPattern::Suffix(h[1..].to_ascii_lowercase()),
            h => HostPattern::Exact(h.to_ascii_lowercase()),
        };
        Ok(Self { scheme, host, port })
    }

    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        self.scheme.as_deref().is_none_or(|s| s == scheme)
            && self.port.is_none_or(|p| p == port)
            && match &self.host {
                HostPattern::Any => true,
                HostPattern::Exact(h) => *h == host,
                HostPattern::Suffix(s) => host.ends_with(s.as_str()),
            }
    }
}

/// `wasi:http` hooks of one instance: the allow-list, and a plain HTTP/1.1 client for what it
/// allows.
#[derive(Debug, Clone, Default)]
pub struct OutboundHooks {
    pub allowed: Vec<AllowedHost>,
}

type SendFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn Future<Output = Result<(), Error>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        drop(fut);
        let uri = request.uri().clone();
        let scheme = uri.scheme_str().unwrap_or("https").to_owned();
        let host = uri.host().unwrap_or("").to_owned();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        let allowed = self.allowed.iter().any(|a| a.allows(&scheme, &host, port));
        Box::new(async move {
            if !allowed {
                tracing::warn!(%scheme, %host, port, "outbound request denied by allowed_outbound_hosts");
                return Err(Error::HttpRequestDenied);
            }
            if scheme != "http" {
                // The local host speaks plain HTTP only; deployments run under Spin, which has TLS.
                return Err(Error::TlsProtocolError);
            }
            let connect_timeout = options
                .as_ref()
                .and_then(|o| o.connect_timeout)
                .unwrap_or(Duration::from_secs(30));
            let stream = tokio::time::timeout(
                connect_timeout,
                tokio::net::TcpStream::connect((host.as_str(), port)),
            )
            .await
            .map_err(|_| Error::ConnectionTimeout)?
            .map_err(|_| Error::ConnectionRefused)?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(Error::Hyper)?;
            let io = tokio::spawn(connection);
            let response = sender.send_request(request).await.map_err(Error::Hyper)?;
            let response = response.map(|body| body.map_err(Error::Hyper).boxed_unsync());
            let done: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(async move {
                match io.await {
                    Ok(result) => result.map_err(Error::Hyper),
                    Err(_) => Err(Error::ConnectionTerminated),
                }
            });
            Ok((response, done))
        })
    }
}

/// Convenience for building bodies in tests.
pub fn full_body(bytes: impl Into<Bytes>) -> WasiBody {
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_table() {
        let a = |s: &str| AllowedHost::parse(s).unwrap();
        assert!(a("http://127.0.0.1:3000").allows("http", "127.0.0.1", 3000));
        assert!(!a("http://127.0.0.1:3000").allows("http", "127.0.0.1", 3001));
        assert!(!a("http://127.0.0.1:3000").allows("https", "127.0.0.1", 3000));
        assert!(a("https://*.example.com").allows("https", "api.example.com", 443));
        assert!(!a("https://*.example.com").allows("https", "example.org", 443));
        assert!(a("*://*:*").allows("http", "anything", 1));
        assert!(a("http://localhost:*").allows("http", "localhost", 9));
        assert!(AllowedHost::parse("example.com").is_err());
        assert!(AllowedHost::parse("ftp://x").is_err());
    }
}
