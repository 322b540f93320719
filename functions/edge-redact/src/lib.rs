//! `POST /redact` as a Spin HTTP component: read the body under the size limit, hand it to
//! `sentio_core::redact_api`, write the JSON answer. Everything else lives in the crates.

use std::sync::OnceLock;

use http_body_util::BodyExt as _;
use sentio_core::{ApiError, EdgeConfig, RequestContext};
use sentio_redact::Engine;
use spin_sdk::http::{HeaderMap, HeaderValue, IntoResponse, Method, Request, StatusCode};
use spin_sdk::http_service;

// The `sentio-preinit` export (WIT world `sentio:edge/preinit`). wit-bindgen's generated ABI glue
// needs `unsafe`; nothing written by hand here does.
#[allow(unsafe_code)]
mod preinit {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "sentio:edge/preinit",
        pub_export_macro: true,
        export_macro_name: "export_preinit",
    });
}

struct Preinit;

impl preinit::Guest for Preinit {
    /// Compiles the recognizers and warms their automata, so a snapshot taken afterwards serves
    /// every request with them ready.
    fn sentio_preinit() {
        if let Ok(engine) = builtin_engine() {
            engine.warm_up();
        }
    }
}

#[allow(unsafe_code)]
mod preinit_export {
    use super::Preinit;
    crate::preinit::export_preinit!(Preinit with_types_in crate::preinit);
}

/// The built-in recognizers compiled once per instance; a pre-initialized component (see
/// `sentio preinit`) carries them compiled in its snapshot.
static BUILTIN_ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();

fn builtin_engine() -> Result<&'static Engine, ApiError> {
    BUILTIN_ENGINE
        .get_or_init(|| Engine::builtin().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| ApiError::Internal { detail: e.clone() })
}

async fn load_config() -> Result<EdgeConfig, ApiError> {
    let mut values = Vec::new();
    for &name in EdgeConfig::VARIABLES {
        match spin_sdk::variables::get(name).await {
            Ok(v) => values.push((name, v)),
            Err(spin_sdk::variables::Error::Undefined(_)) => {}
            Err(e) => {
                return Err(ApiError::Internal {
                    detail: format!("reading variable `{name}`: {e:?}"),
                });
            }
        }
    }
    EdgeConfig::from_lookup(|k| values.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
        .map_err(|e| ApiError::Internal {
            detail: e.to_string(),
        })
}

async fn read_body(req: Request, limit: usize) -> Result<Vec<u8>, ApiError> {
    let too_large = ApiError::PayloadTooLarge { limit_bytes: limit };
    let declared = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large);
    }
    let mut body = req.into_body();
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::MalformedJson {
            detail: format!("request body could not be read: {e:?}"),
        })?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > limit {
                return Err(too_large);
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes)
}

async fn serve(req: Request) -> Result<Vec<u8>, ApiError> {
    if req.method() != Method::POST {
        return Err(ApiError::MethodNotAllowed {
            method: req.method().to_string(),
            allowed: "POST",
        });
    }
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok());
    sentio_core::http::check_json_content_type(content_type)?;
    let tenant =
        RequestContext::from_headers(|name| req.headers().get(name).and_then(|v| v.to_str().ok()))
            .tenant;
    let config = load_config().await?.for_tenant(tenant.as_deref());
    let body = read_body(req, config.max_body_bytes).await?;
    let builtin = builtin_engine()?;
    let extended;
    let engine = if config.custom_recognizers.is_empty() {
        builtin
    } else {
        extended = builtin
            .extend(&config.custom_recognizers)
            .map_err(|e| ApiError::Internal {
                detail: e.to_string(),
            })?;
        &extended
    };
    let response = sentio_core::redact_api::redact(engine, &config, &body)?;
    serde_json::to_vec(&response).map_err(|e| ApiError::Internal {
        detail: e.to_string(),
    })
}

#[http_service]
async fn handle(req: Request) -> impl IntoResponse {
    let (status, body, allow) = match serve(req).await {
        Ok(body) => (200, body, None),
        Err(e) => {
            let allow = match &e {
                ApiError::MethodNotAllowed { allowed, .. } => Some(*allowed),
                _ => None,
            };
            (e.status(), e.to_json(), allow)
        }
    };
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    if let Some(allow) = allow {
        headers.insert("allow", HeaderValue::from_static(allow));
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        headers,
        http_body_util::Full::new(bytes::Bytes::from(body)),
    )
}
