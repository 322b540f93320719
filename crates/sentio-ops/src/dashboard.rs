//! The operator dashboard's numbers: a rolling window of time buckets (throughput, latency
//! percentiles per route and tier, labels, confidence, low-confidence and escalated shares,
//! queue depth) and drift of the recent window against a baseline (population stability index).
//!
//! Time is passed in (`now_ms`), so the window is tested without sleeping.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;

use crate::metrics::QueueGauges;

/// Latency buckets grow by 20 %: a percentile is known to within that step.
const LATENCY_GROWTH: f64 = 1.2;
const LATENCY_FIRST_MS: f64 = 0.1;
const LATENCY_BUCKETS: usize = 90;
const CONFIDENCE_BINS: usize = 10;
const LABELS: [&str; 3] = ["negative", "neutral", "positive"];
/// Below this many predictions on either side, drift is not computed.
const MIN_DRIFT_SAMPLES: u64 = 20;

#[derive(Debug, Clone, Copy)]
pub struct WindowSettings {
    pub bucket_ms: u64,
    /// How much history is kept.
    pub retention_ms: u64,
    /// The recent window drift is measured on; everything older that is retained is the
    /// baseline.
    pub current_ms: u64,
    /// Predictions under this confidence count as low-confidence.
    pub low_confidence: f64,
}

impl Default for WindowSettings {
    fn default() -> Self {
        Self {
            bucket_ms: 10_000,
            retention_ms: 3_600_000,
            current_ms: 300_000,
            low_confidence: 0.6,
        }
    }
}

#[derive(Debug, Clone)]
struct Bucket {
    start_ms: u64,
    requests: BTreeMap<String, u64>,
    latency: BTreeMap<(String, String), Vec<u64>>,
    labels: [u64; 3],
    confidence: [u64; CONFIDENCE_BINS],
    predictions: u64,
    low_confidence: u64,
    escalated: u64,
    queue: Option<QueueGauges>,
}

impl Bucket {
    fn new(start_ms: u64) -> Self {
        Self {
            start_ms,
            requests: BTreeMap::new(),
            latency: BTreeMap::new(),
            labels: [0; 3],
            confidence: [0; CONFIDENCE_BINS],
            predictions: 0,
            low_confidence: 0,
            escalated: 0,
            queue: None,
        }
    }
}

fn latency_bucket(ms: f64) -> usize {
    if ms <= LATENCY_FIRST_MS {
        return 0;
    }
    (((ms / LATENCY_FIRST_MS).ln() / LATENCY_GROWTH.ln()).ceil() as usize).min(LATENCY_BUCKETS - 1)
}

fn latency_bound_ms(bucket: usize) -> f64 {
    LATENCY_FIRST_MS * LATENCY_GROWTH.powi(bucket as i32)
}

/// The `q` quantile (0–1) of a latency histogram: the upper bound of the bucket it falls in.
fn quantile(counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = (q * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, c) in counts.iter().enumerate() {
        seen += c;
        if seen >= rank {
            return Some(latency_bound_ms(i));
        }
    }
    None
}

/// Population stability index of `current` against `baseline` (counts over the same bins).
/// Empty bins get a small floor so the logarithm stays finite.
pub fn psi(baseline: &[u64], current: &[u64]) -> Option<f64> {
    let (b_total, c_total): (u64, u64) = (baseline.iter().sum(), current.iter().sum());
    if b_total == 0 || c_total == 0 {
        return None;
    }
    const FLOOR: f64 = 1e-4;
    Some(
        baseline
            .iter()
            .zip(current)
            .map(|(&b, &c)| {
                let b = (b as f64 / b_total as f64).max(FLOOR);
                let c = (c as f64 / c_total as f64).max(FLOOR);
                (c - b) * (c / b).ln()
            })
            .sum(),
    )
}

/// The usual reading of a PSI value.
fn psi_level(value: f64) -> &'static str {
    if value < 0.1 {
        "stable"
    } else if value < 0.25 {
        "moderate"
    } else {
        "significant"
    }
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub now_ms: u64,
    pub bucket_ms: u64,
    pub series: Vec<Point>,
    /// Per `route · tier`, over the current window.
    pub latency: Vec<LatencyRow>,
    pub confidence_histogram: ConfidenceHistogram,
    pub current: WindowTotals,
    pub drift: Drift,
    pub queue: Option<QueueGauges>,
}

#[derive(Debug, Serialize)]
pub struct Point {
    pub t_ms: u64,
    pub requests_per_second: f64,
    pub labels: BTreeMap<&'static str, u64>,
    pub low_confidence_share: Option<f64>,
    pub escalated_share: Option<f64>,
    /// `route · tier` → p95 latency (ms) in this bucket.
    pub p95_ms: BTreeMap<String, f64>,
    pub queue_visible: Option<u64>,
    pub queue_dead: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct LatencyRow {
    pub route: String,
    pub tier: String,
    pub count: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct ConfidenceHistogram {
    /// Lower edges of the bins (0.0, 0.1, … 0.9).
    pub bins: Vec<f64>,
    pub counts: Vec<u64>,
}

#[derive(Debug, Serialize)]
pub struct WindowTotals {
    pub window_ms: u64,
    pub requests: u64,
    pub predictions: u64,
    pub labels: BTreeMap<&'static str, u64>,
    pub low_confidence_share: Option<f64>,
    pub escalated_share: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Drift {
    pub baseline_predictions: u64,
    pub current_predictions: u64,
    pub label_psi: Option<f64>,
    pub confidence_psi: Option<f64>,
    /// `stable`, `moderate`, `significant`, or `insufficient data`.
    pub level: &'static str,
}

/// The dashboard's rolling window.
pub struct Dashboard {
    settings: WindowSettings,
    buckets: Mutex<VecDeque<Bucket>>,
}

impl Dashboard {
    pub fn new(settings: WindowSettings) -> Self {
        Self {
            settings,
            buckets: Mutex::new(VecDeque::new()),
        }
    }

    fn with_bucket(&self, now_ms: u64, f: impl FnOnce(&mut Bucket)) {
        let start = now_ms - now_ms % self.settings.bucket_ms;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.back().is_none_or(|b| b.start_ms < start) {
            buckets.push_back(Bucket::new(start));
        }
        let oldest = now_ms.saturating_sub(self.settings.retention_ms);
        while buckets.front().is_some_and(|b| b.start_ms < oldest) {
            buckets.pop_front();
        }
        // A sample from a moment ago lands in its own bucket if that is still retained.
        if let Some(bucket) = buckets.iter_mut().rev().find(|b| b.start_ms <= start) {
            f(bucket);
        }
    }

    pub fn record_request(&self, now_ms: u64, route: &str, tier: &str, latency_ms: f64) {
        self.with_bucket(now_ms, |b| {
            *b.requests.entry(route.to_owned()).or_default() += 1;
            b.latency
                .entry((route.to_owned(), tier.to_owned()))
                .or_insert_with(|| vec![0; LATENCY_BUCKETS])[latency_bucket(latency_ms)] += 1;
        });
    }

    pub fn record_prediction(&self, now_ms: u64, label: &str, confidence: f64) {
        let low = confidence < self.settings.low_confidence;
        self.with_bucket(now_ms, |b| {
            if let Some(i) = LABELS.iter().position(|l| *l == label) {
                b.labels[i] += 1;
            }
            let bin = ((confidence * CONFIDENCE_BINS as f64) as usize).min(CONFIDENCE_BINS - 1);
            b.confidence[bin] += 1;
            b.predictions += 1;
            b.low_confidence += u64::from(low);
        });
    }

    /// One request's predictions were handed on or flagged (counted per prediction).
    pub fn record_escalated(&self, now_ms: u64, predictions: u64) {
        self.with_bucket(now_ms, |b| b.escalated += predictions);
    }

    pub fn record_queue(&self, now_ms: u64, gauges: QueueGauges) {
        self.with_bucket(now_ms, |b| b.queue = Some(gauges));
    }

    pub fn summary(&self, now_ms: u64, span_ms: u64) -> Summary {
        let all = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let s = &self.settings;
        let buckets: Vec<&Bucket> = all
            .iter()
            .filter(|b| b.start_ms + s.retention_ms >= now_ms)
            .collect();
        let bucket_secs = s.bucket_ms as f64 / 1000.0;
        let share = |part: u64, whole: u64| (whole > 0).then(|| part as f64 / whole as f64);
        let label_map = |counts: &[u64; 3]| -> BTreeMap<&'static str, u64> {
            LABELS.iter().copied().zip(counts.iter().copied()).collect()
        };
        let series = buckets
            .iter()
            .filter(|b| b.start_ms + span_ms >= now_ms)
            .map(|b| Point {
                t_ms: b.start_ms,
                requests_per_second: b.requests.values().sum::<u64>() as f64 / bucket_secs,
                labels: label_map(&b.labels),
                low_confidence_share: share(b.low_confidence, b.predictions),
                escalated_share: share(b.escalated, b.predictions),
                p95_ms: b
                    .latency
                    .iter()
                    .filter_map(|((route, tier), counts)| {
                        quantile(counts, 0.95).map(|p| (format!("{route} · {tier}"), p))
                    })
                    .collect(),
                queue_visible: b.queue.map(|q| q.visible),
                queue_dead: b.queue.map(|q| q.dead),
            })
            .collect();

        let current_start = now_ms.saturating_sub(s.current_ms);
        let mut latency: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
        let mut current = Bucket::new(current_start);
        let mut baseline = Bucket::new(0);
        for b in &buckets {
            let side = if b.start_ms + s.bucket_ms > current_start {
                for (key, counts) in &b.latency {
                    let into = latency
                        .entry(key.clone())
                        .or_insert_with(|| vec![0; LATENCY_BUCKETS]);
                    into.iter_mut().zip(counts).for_each(|(a, c)| *a += c);
                }
                *current.requests.entry(String::new()).or_default() +=
                    b.requests.values().sum::<u64>();
                &mut current
            } else {
                &mut baseline
            };
            side.labels
                .iter_mut()
                .zip(b.labels)
                .for_each(|(a, c)| *a += c);
            side.confidence
                .iter_mut()
                .zip(b.confidence)
                .for_each(|(a, c)| *a += c);
            side.predictions += b.predictions;
            side.low_confidence += b.low_confidence;
            side.escalated += b.escalated;
        }
        let latency = latency
            .into_iter()
            .map(|((route, tier), counts)| LatencyRow {
                route,
                tier,
                count: counts.iter().sum(),
                p50_ms: quantile(&counts, 0.50).unwrap_or(0.0),
                p95_ms: quantile(&counts, 0.95).unwrap_or(0.0),
                p99_ms: quantile(&counts, 0.99).unwrap_or(0.0),
            })
            .collect();
        let enough =
            baseline.predictions >= MIN_DRIFT_SAMPLES && current.predictions >= MIN_DRIFT_SAMPLES;
        let label_psi = enough
            .then(|| psi(&baseline.labels, &current.labels))
            .flatten();
        let confidence_psi = enough
            .then(|| psi(&baseline.confidence, &current.confidence))
            .flatten();
        let level = match (label_psi, confidence_psi) {
            (Some(a), Some(b)) => psi_level(a.max(b)),
            _ => "insufficient data",
        };
        Summary {
            now_ms,
            bucket_ms: s.bucket_ms,
            series,
            latency,
            confidence_histogram: ConfidenceHistogram {
                bins: (0..CONFIDENCE_BINS)
                    .map(|i| i as f64 / CONFIDENCE_BINS as f64)
                    .collect(),
                counts: current.confidence.to_vec(),
            },
            current: WindowTotals {
                window_ms: s.current_ms,
                requests: current.requests.values().sum(),
                predictions: current.predictions,
                labels: label_map(&current.labels),
                low_confidence_share: share(current.low_confidence, current.predictions),
                escalated_share: share(current.escalated, current.predictions),
            },
            drift: Drift {
                baseline_predictions: baseline.predictions,
                current_predictions: current.predictions,
                label_psi,
                confidence_psi,
                level,
            },
            queue: buckets.iter().rev().find_map(|b| b.queue),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_values() {
        assert_eq!(psi(&[10, 10, 10], &[0, 0, 0]), None);
        let same = psi(&[100, 200, 300], &[10, 20, 30]).unwrap();
        assert!(same.abs() < 1e-12);
        // A textbook case: shares 0.5/0.5 → 0.9/0.1 gives 0.4·ln(1.8) + 0.4·ln(5) ≈ 0.879.
        let shifted = psi(&[50, 50], &[90, 10]).unwrap();
        assert!((shifted - (0.4 * 1.8f64.ln() + 0.4 * 5f64.ln())).abs() < 1e-9);
        assert_eq!(psi_level(0.05), "stable");
        assert_eq!(psi_level(0.2), "moderate");
        assert_eq!(psi_level(shifted), "significant");
    }

    #[test]
    fn quantiles_are_within_one_bucket_step() {
        let mut counts = vec![0; LATENCY_BUCKETS];
        for ms in 1..=100 {
            counts[latency_bucket(f64::from(ms))] += 1;
        }
        for (q, exact) in [(0.5, 50.0), (0.95, 95.0), (0.99, 99.0)] {
            let got = quantile(&counts, q).unwrap();
            assert!(got >= exact && got <= exact * LATENCY_GROWTH, "{q}: {got}");
        }
        assert_eq!(quantile(&[0; 4], 0.5), None);
    }

    #[test]
    fn window_totals_and_drift() {
        let settings = WindowSettings {
            bucket_ms: 1_000,
            retention_ms: 60_000,
            current_ms: 10_000,
            low_confidence: 0.6,
        };
        let d = Dashboard::new(settings);
        // Baseline: mostly positive and confident.
        for i in 0..40 {
            let t = 1_000 + i * 100;
            d.record_request(t, "/classify-sentiment", "edge", 4.0);
            d.record_prediction(t, if i % 4 == 0 { "neutral" } else { "positive" }, 0.9);
        }
        // Current: mostly negative, less sure, some escalated.
        for i in 0..40 {
            let t = 50_000 + i * 100;
            d.record_request(t, "/classify-sentiment", "edge", 8.0);
            d.record_prediction(t, "negative", 0.5);
        }
        d.record_escalated(53_000, 10);
        d.record_queue(
            54_000,
            QueueGauges {
                visible: 4,
                ..QueueGauges::default()
            },
        );
        let s = d.summary(55_000, 60_000);
        assert_eq!(s.current.predictions, 40);
        assert_eq!(s.current.labels["negative"], 40);
        assert_eq!(s.current.low_confidence_share, Some(1.0));
        assert_eq!(s.current.escalated_share, Some(0.25));
        assert_eq!(s.drift.baseline_predictions, 40);
        assert_eq!(s.drift.level, "significant");
        assert!(s.drift.label_psi.unwrap() > 0.25);
        assert_eq!(s.latency.len(), 1);
        assert!(s.latency[0].p50_ms >= 8.0 && s.latency[0].p50_ms < 8.0 * 1.2);
        assert_eq!(s.confidence_histogram.counts[5], 40);
        assert_eq!(s.queue.unwrap().visible, 4);
        assert!(s.series.iter().any(|p| p.requests_per_second == 10.0));

        // The window moves: later the old baseline has aged out and the negative burst is the
        // baseline, with nothing current to compare.
        let later = d.summary(70_000, 60_000);
        assert_eq!(later.drift.baseline_predictions, 40);
        assert_eq!(later.drift.current_predictions, 0);
        assert_eq!(later.drift.level, "insufficient data");
    }
}
