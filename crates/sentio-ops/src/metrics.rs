//! Prometheus metrics in the text exposition format (version 0.0.4).
//!
//! Label values are bounded sets only: route patterns (never raw paths), status codes, tiers,
//! model ids, sentiment labels, escalation outcomes. No text, id or customer value ever becomes
//! a label.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Seconds; from 1 ms (a warm edge answer) to 10 s (an escalation at its budget, a stream).
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const CONFIDENCE_BUCKETS: &[f64] = &[0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0];

#[derive(Debug, Clone)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(buckets: &[f64]) -> Self {
        Self {
            counts: vec![0; buckets.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, buckets: &[f64], value: f64) {
        for (count, bound) in self.counts.iter_mut().zip(buckets) {
            if value <= *bound {
                *count += 1;
            }
        }
        self.sum += value;
        self.count += 1;
    }
}

type Labels = Vec<(&'static str, String)>;

/// Queue gauges, sampled by whoever owns the queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct QueueGauges {
    pub visible: u64,
    pub in_flight: u64,
    pub dead: u64,
    /// Age of the oldest queued message, where the queue knows it.
    pub oldest_age_seconds: Option<f64>,
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<Labels, u64>,
    duration: BTreeMap<Labels, Histogram>,
    predictions: BTreeMap<Labels, u64>,
    confidence: BTreeMap<Labels, Histogram>,
    escalations: BTreeMap<Labels, u64>,
    rejected: BTreeMap<Labels, u64>,
    queue: Option<QueueGauges>,
}

/// The registry `/metrics` renders.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// One finished request, as the metrics see it.
pub struct RequestSample<'a> {
    pub route: &'a str,
    pub status: u16,
    pub tier: &'a str,
    pub model: &'a str,
    pub seconds: f64,
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn record_request(&self, sample: &RequestSample<'_>) {
        let mut inner = self.lock();
        *inner
            .requests
            .entry(vec![
                ("route", sample.route.to_owned()),
                ("status", sample.status.to_string()),
            ])
            .or_default() += 1;
        inner
            .duration
            .entry(vec![
                ("route", sample.route.to_owned()),
                ("tier", sample.tier.to_owned()),
                ("model", sample.model.to_owned()),
            ])
            .or_insert_with(|| Histogram::new(LATENCY_BUCKETS))
            .observe(LATENCY_BUCKETS, sample.seconds);
    }

    pub fn record_prediction(
        &self,
        route: &str,
        tier: &str,
        model: &str,
        label: &str,
        confidence: f64,
    ) {
        let mut inner = self.lock();
        let base: Labels = vec![
            ("route", route.to_owned()),
            ("tier", tier.to_owned()),
            ("model", model.to_owned()),
        ];
        let mut with_label = base.clone();
        with_label.push(("label", label.to_owned()));
        *inner.predictions.entry(with_label).or_default() += 1;
        inner
            .confidence
            .entry(base)
            .or_insert_with(|| Histogram::new(CONFIDENCE_BUCKETS))
            .observe(CONFIDENCE_BUCKETS, confidence);
    }

    pub fn record_escalation(&self, route: &str, outcome: &str) {
        *self
            .lock()
            .escalations
            .entry(vec![
                ("route", route.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .or_default() += 1;
    }

    /// A request the gateway turned away: `unauthorized`, `forbidden`, `rate_limited`, `cors`.
    pub fn record_rejection(&self, reason: &str) {
        *self
            .lock()
            .rejected
            .entry(vec![("reason", reason.to_owned())])
            .or_default() += 1;
    }

    pub fn set_queue(&self, gauges: QueueGauges) {
        self.lock().queue = Some(gauges);
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let inner = self.lock();
        let mut out = String::new();
        counter(
            &mut out,
            "sentio_requests_total",
            "Requests answered, by route pattern and status.",
            &inner.requests,
        );
        histogram(
            &mut out,
            "sentio_request_duration_seconds",
            "Time to the response head, by route, tier and model.",
            LATENCY_BUCKETS,
            &inner.duration,
        );
        counter(
            &mut out,
            "sentio_predictions_total",
            "Predictions returned, by route, tier, model and label.",
            &inner.predictions,
        );
        histogram(
            &mut out,
            "sentio_prediction_confidence",
            "Confidence of returned predictions.",
            CONFIDENCE_BUCKETS,
            &inner.confidence,
        );
        counter(
            &mut out,
            "sentio_escalations_total",
            "Requests the edge handed on (escalated, deferred, failed) or conversations flagged (escalate).",
            &inner.escalations,
        );
        counter(
            &mut out,
            "sentio_rejected_total",
            "Requests the gateway turned away, by reason.",
            &inner.rejected,
        );
        if let Some(q) = inner.queue {
            let gauges = [
                (
                    "sentio_queue_visible_messages",
                    "Messages waiting in the nearline queue.",
                    q.visible as f64,
                ),
                (
                    "sentio_queue_in_flight_messages",
                    "Messages received and not yet deleted.",
                    q.in_flight as f64,
                ),
                (
                    "sentio_queue_dead_letters",
                    "Messages in the dead-letter queue.",
                    q.dead as f64,
                ),
            ];
            for (name, help, value) in gauges {
                let _ = writeln!(
                    out,
                    "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
                );
            }
            if let Some(age) = q.oldest_age_seconds {
                let name = "sentio_queue_lag_seconds";
                let _ = writeln!(
                    out,
                    "# HELP {name} Age of the oldest waiting message.\n# TYPE {name} gauge\n{name} {age}"
                );
            }
        }
        out
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn label_set(labels: &Labels, extra: Option<(&str, String)>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn counter(out: &mut String, name: &str, help: &str, values: &BTreeMap<Labels, u64>) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (labels, value) in values {
        let _ = writeln!(out, "{name}{} {value}", label_set(labels, None));
    }
}

fn histogram(
    out: &mut String,
    name: &str,
    help: &str,
    buckets: &[f64],
    values: &BTreeMap<Labels, Histogram>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (labels, h) in values {
        for (bound, count) in buckets.iter().zip(&h.counts) {
            let le = Some(("le", bound.to_string()));
            let _ = writeln!(out, "{name}_bucket{} {count}", label_set(labels, le));
        }
        let inf = Some(("le", "+Inf".to_owned()));
        let _ = writeln!(out, "{name}_bucket{} {}", label_set(labels, inf), h.count);
        let _ = writeln!(out, "{name}_sum{} {}", label_set(labels, None), h.sum);
        let _ = writeln!(out, "{name}_count{} {}", label_set(labels, None), h.count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let m = Metrics::default();
        m.record_request(&RequestSample {
            route: "/classify-sentiment",
            status: 200,
            tier: "edge",
            model: "sentiment-student@1",
            seconds: 0.004,
        });
        m.record_prediction(
            "/classify-sentiment",
            "edge",
            "sentiment-student@1",
            "negative",
            0.93,
        );
        m.record_escalation("/classify-sentiment", "deferred");
        m.record_rejection("rate_limited");
        m.set_queue(QueueGauges {
            visible: 3,
            in_flight: 1,
            dead: 0,
            oldest_age_seconds: Some(2.5),
        });
        let text = m.render();
        for line in [
            r#"sentio_requests_total{route="/classify-sentiment",status="200"} 1"#,
            r#"sentio_request_duration_seconds_bucket{route="/classify-sentiment",tier="edge",model="sentiment-student@1",le="0.005"} 1"#,
            r#"sentio_request_duration_seconds_bucket{route="/classify-sentiment",tier="edge",model="sentiment-student@1",le="0.0025"} 0"#,
            r#"sentio_request_duration_seconds_count{route="/classify-sentiment",tier="edge",model="sentiment-student@1"} 1"#,
            r#"sentio_predictions_total{route="/classify-sentiment",tier="edge",model="sentiment-student@1",label="negative"} 1"#,
            r#"sentio_prediction_confidence_bucket{route="/classify-sentiment",tier="edge",model="sentiment-student@1",le="0.9"} 0"#,
            r#"sentio_prediction_confidence_bucket{route="/classify-sentiment",tier="edge",model="sentiment-student@1",le="0.95"} 1"#,
            r#"sentio_escalations_total{route="/classify-sentiment",outcome="deferred"} 1"#,
            r#"sentio_rejected_total{reason="rate_limited"} 1"#,
            "sentio_queue_visible_messages 3",
            "sentio_queue_lag_seconds 2.5",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::default();
        m.record_rejection("a\"b\\c\nd");
        assert!(m.render().contains(r#"reason="a\"b\\c\nd""#));
    }
}
