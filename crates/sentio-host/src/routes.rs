//! Spin's HTTP route matching: exact paths, `:name` segments and a trailing `/...` wildcard. More
//! specific routes win: exact beats parameter beats wildcard, and longer beats shorter.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

#[derive(Debug, Clone)]
pub struct RoutePattern {
    pub raw: String,
    segments: Vec<Segment>,
    wildcard: bool,
}

/// A successful match: the pattern and what Spin reports as the path info (the part of the path
/// after the matched prefix, for wildcard routes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub index: usize,
    pub path_info: String,
    pub params: Vec<(String, String)>,
}

impl RoutePattern {
    pub fn parse(raw: &str) -> Self {
        let trimmed = raw.trim_end_matches('/');
        let (body, wildcard) = match trimmed.strip_suffix("/...") {
            Some(prefix) => (prefix, true),
            None if trimmed == "..." => ("", true),
            None => (trimmed, false),
        };
        let segments = body
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| match s.strip_prefix(':') {
                Some(name) => Segment::Param(name.to_owned()),
                None => Segment::Literal(s.to_owned()),
            })
            .collect();
        Self {
            raw: raw.to_owned(),
            segments,
            wildcard,
        }
    }

    fn matches(&self, path: &[&str]) -> Option<(Vec<(String, String)>, String)> {
        if path.len() < self.segments.len() || (!self.wildcard && path.len() != self.segments.len())
        {
            return None;
        }
        let mut params = Vec::new();
        for (seg, part) in self.segments.iter().zip(path) {
            match seg {
                Segment::Literal(l) if l == part => {}
                Segment::Literal(_) => return None,
                Segment::Param(name) => params.push((name.clone(), (*part).to_owned())),
            }
        }
        let rest = &path[self.segments.len()..];
        let path_info = if rest.is_empty() {
            String::new()
        } else {
            format!("/{}", rest.join("/"))
        };
        Some((params, path_info))
    }

    /// Sort key: more specific first.
    fn specificity(&self) -> (bool, usize, usize) {
        let literals = self
            .segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count();
        (!self.wildcard, self.segments.len(), literals)
    }
}

/// The routes of an application, in match order.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<(usize, RoutePattern)>,
}

impl Router {
    /// `routes` are (trigger index, pattern) pairs.
    pub fn new(routes: impl IntoIterator<Item = (usize, String)>) -> Self {
        let mut routes: Vec<(usize, RoutePattern)> = routes
            .into_iter()
            .map(|(i, r)| (i, RoutePattern::parse(&r)))
            .collect();
        routes.sort_by_key(|r| std::cmp::Reverse(r.1.specificity()));
        Self { routes }
    }

    pub fn route(&self, path: &str) -> Option<RouteMatch> {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        self.routes.iter().find_map(|(index, pattern)| {
            pattern
                .matches(&parts)
                .map(|(params, path_info)| RouteMatch {
                    index: *index,
                    path_info,
                    params,
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_table() {
        let router = Router::new([
            (0, "/redact".to_string()),
            (1, "/...".to_string()),
            (2, "/api/:version/items".to_string()),
            (3, "/static/...".to_string()),
        ]);
        let idx = |p: &str| router.route(p).map(|m| m.index);
        assert_eq!(idx("/redact"), Some(0));
        assert_eq!(idx("/redact/"), Some(0));
        assert_eq!(idx("/redact/x"), Some(1));
        assert_eq!(idx("/api/v1/items"), Some(2));
        assert_eq!(idx("/static/css/a.css"), Some(3));
        assert_eq!(
            router.route("/static/css/a.css").unwrap().path_info,
            "/css/a.css"
        );
        assert_eq!(
            router.route("/api/v2/items").unwrap().params,
            vec![("version".to_string(), "v2".to_string())]
        );
        assert_eq!(idx("/"), Some(1));
        let exact_only = Router::new([(0, "/redact".to_string())]);
        assert_eq!(exact_only.route("/other"), None);
    }
}
