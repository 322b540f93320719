//! CloudWatch Embedded Metric Format: one JSON line on stdout that CloudWatch Logs turns into
//! metrics, with no API call and no agent. The Lambdas print one per request (heavy tier) and
//! one per batch (worker). Dimensions are bounded (function, route, status); never text.

use serde_json::{Map, Value, json};

pub use sentio_queue::now_ms;

pub const NAMESPACE: &str = "Sentio";

#[derive(Debug, Clone, Copy)]
pub enum Unit {
    Milliseconds,
    Count,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Milliseconds => "Milliseconds",
            Unit::Count => "Count",
        }
    }
}

/// One EMF record: `dimensions` as one dimension set, every metric under it.
pub fn record(dimensions: &[(&str, &str)], metrics: &[(&str, f64, Unit)], now_ms: u64) -> String {
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions.iter().map(|(k, _)| *k).collect::<Vec<_>>()],
                "Metrics": metrics.iter().map(|(name, _, unit)| json!({"Name": name, "Unit": unit.as_str()})).collect::<Vec<_>>(),
            }]
        }),
    );
    for (k, v) in dimensions {
        root.insert((*k).to_owned(), Value::from(*v));
    }
    for (name, value, _) in metrics {
        root.insert((*name).to_owned(), json!(value));
    }
    Value::Object(root).to_string()
}

/// The heavy tier's per-request record.
pub fn request(route: &str, status: u16, latency_ms: f64, now_ms: u64) -> String {
    // Routes outside the API collapse into one value: the dimension stays bounded.
    let route = match route {
        "/v1/classify"
        | "/v1/analyze-conversation"
        | "/v1/jobs"
        | "/v1/overflow"
        | "/v1/healthz" => route,
        _ => "other",
    };
    record(
        &[
            ("Function", "heavy"),
            ("Route", route),
            ("Status", &status.to_string()),
        ],
        &[
            ("Latency", latency_ms, Unit::Milliseconds),
            ("Requests", 1.0, Unit::Count),
        ],
        now_ms,
    )
}

/// The worker's per-batch record.
pub fn batch(
    stats: &crate::worker::WorkerStats,
    messages: usize,
    duration_ms: f64,
    now_ms: u64,
) -> String {
    record(
        &[("Function", "worker")],
        &[
            ("BatchMessages", messages as f64, Unit::Count),
            ("ItemsScored", stats.scored as f64, Unit::Count),
            ("ItemsDelivered", stats.delivered as f64, Unit::Count),
            (
                "ItemsAlreadyDelivered",
                stats.already_delivered as f64,
                Unit::Count,
            ),
            ("ItemsFailed", stats.failed as f64, Unit::Count),
            ("BatchDuration", duration_ms, Unit::Milliseconds),
        ],
        now_ms,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_follow_the_format() {
        let line = request("/v1/classify", 200, 12.5, 1_700_000_000_000);
        let v: Value = serde_json::from_str(&line).unwrap();
        let spec = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000u64);
        assert_eq!(spec["Namespace"], "Sentio");
        assert_eq!(spec["Dimensions"], json!([["Function", "Route", "Status"]]));
        assert_eq!(
            spec["Metrics"][0],
            json!({"Name": "Latency", "Unit": "Milliseconds"})
        );
        // Every dimension and metric named in `_aws` is a top-level member.
        for name in ["Function", "Route", "Status", "Latency", "Requests"] {
            assert!(v.get(name).is_some(), "{name}");
        }
        assert_eq!(v["Status"], "200");
        let odd: Value =
            serde_json::from_str(&request("/v1/secret-path-with-id-123", 404, 1.0, 0)).unwrap();
        assert_eq!(odd["Route"], "other");
        let stats = crate::worker::WorkerStats {
            scored: 3,
            delivered: 2,
            failed: 1,
            ..Default::default()
        };
        let b: Value = serde_json::from_str(&batch(&stats, 4, 80.0, 0)).unwrap();
        assert_eq!(b["ItemsFailed"], 1.0);
        assert_eq!(b["BatchMessages"], 4.0);
    }
}
