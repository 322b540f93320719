//! `sentio classify` and `sentio eval`: the edge's redact-then-classify path run natively over
//! files (plain text lines, JSON lines or CSV), in model batches, with a progress line. The input
//! reading is shared with `sentio redact`.

use std::collections::BTreeMap;
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use sentio_model::{Classifier, ClassifyOptions, Label, TractPipeline};
use sentio_redact::{Engine, RequestScope};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Pick by the file's extension (.jsonl/.ndjson, .csv, anything else: one text per line).
    Auto,
    Text,
    Jsonl,
    Csv,
}

/// Where the texts come from and how to read them.
#[derive(Debug, Clone, clap::Args)]
pub struct Input {
    /// Read this file (`-` or absent: stdin).
    #[arg(long, short)]
    pub file: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    pub format: Format,
    /// The field (JSON lines) or column (CSV) holding the text.
    #[arg(long, default_value = "text")]
    pub text_field: String,
}

/// Which model scores.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelChoice {
    /// The edge student's folder (model.onnx, tokenizer.json, config.json).
    #[arg(long, default_value = "models/sentiment-student")]
    pub model: PathBuf,
    /// Score with the heavy tier's teacher (compiled into `sentio`) instead.
    #[arg(long)]
    pub teacher: bool,
    /// Texts per model batch.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
}

impl ModelChoice {
    pub fn load(&self) -> Result<Arc<dyn Classifier>> {
        if self.teacher {
            return Ok(sentio_heavy::load_teacher()?);
        }
        let read = |name: &str| {
            let path = self.model.join(name);
            std::fs::read(&path).with_context(|| {
                format!(
                    "reading {} (run from the repository root, or pass --model DIR)",
                    path.display()
                )
            })
        };
        Ok(Arc::new(TractPipeline::load(
            &read("model.onnx")?,
            &read("tokenizer.json")?,
            &read("config.json")?,
        )?))
    }
}

/// One input record: its text and every other field, passed through to the output.
pub struct Record {
    pub text: String,
    pub fields: Map<String, Value>,
}

fn format_of(input: &Input) -> Format {
    match (
        input.format,
        input.file.as_deref().and_then(Path::extension),
    ) {
        (Format::Auto, Some(ext)) if ext == "jsonl" || ext == "ndjson" => Format::Jsonl,
        (Format::Auto, Some(ext)) if ext == "csv" => Format::Csv,
        (Format::Auto, _) => Format::Text,
        (f, _) => f,
    }
}

fn open(input: &Input) -> Result<Box<dyn std::io::Read>> {
    match input.file.as_deref() {
        None => Ok(Box::new(std::io::stdin())),
        Some(p) if p == Path::new("-") => Ok(Box::new(std::io::stdin())),
        Some(p) => Ok(Box::new(
            std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?,
        )),
    }
}

/// The edge settings from `SENTIO_<NAME>` environment variables (the hash key, limits, ...).
pub fn edge_config_from_env() -> Result<sentio_core::EdgeConfig> {
    Ok(sentio_core::EdgeConfig::from_lookup(|name| {
        std::env::var(format!("SENTIO_{}", name.to_ascii_uppercase())).ok()
    })?)
}

/// The records to work on: the text given as an argument, or else every record of `input`.
pub fn records(text: Option<String>, input: &Input) -> Result<Vec<Record>> {
    match text {
        Some(text) => Ok(vec![Record {
            text,
            fields: Map::new(),
        }]),
        None => read_records(input),
    }
}

/// Reads every record (files of chat messages fit in memory; the progress line needs a total).
fn read_records(input: &Input) -> Result<Vec<Record>> {
    let reader = open(input)?;
    let field = &input.text_field;
    let mut records = Vec::new();
    match format_of(input) {
        Format::Text | Format::Auto => {
            for line in std::io::BufReader::new(reader).lines() {
                let line = line.context("reading the input")?;
                if !line.trim().is_empty() {
                    records.push(Record {
                        text: line,
                        fields: Map::new(),
                    });
                }
            }
        }
        Format::Jsonl => {
            for (n, line) in std::io::BufReader::new(reader).lines().enumerate() {
                let line = line.context("reading the input")?;
                if line.trim().is_empty() {
                    continue;
                }
                let mut fields: Map<String, Value> = serde_json::from_str(&line)
                    .with_context(|| format!("line {}: not a JSON object", n + 1))?;
                let Some(Value::String(text)) = fields.remove(field) else {
                    bail!(
                        "line {}: no string field `{field}` (choose it with --text-field)",
                        n + 1
                    );
                };
                records.push(Record { text, fields });
            }
        }
        Format::Csv => {
            let mut csv = csv::Reader::from_reader(reader);
            let headers = csv.headers().context("reading the CSV header")?.clone();
            let Some(column) = headers.iter().position(|h| h == field) else {
                bail!(
                    "the CSV has no column `{field}` (columns: {}; choose one with --text-field)",
                    headers.iter().collect::<Vec<_>>().join(", ")
                );
            };
            for (n, row) in csv.records().enumerate() {
                let row = row.with_context(|| format!("CSV row {}", n + 2))?;
                let mut fields = Map::new();
                for (i, (name, value)) in headers.iter().zip(row.iter()).enumerate() {
                    if i != column {
                        fields.insert(name.to_owned(), Value::String(value.to_owned()));
                    }
                }
                records.push(Record {
                    text: row.get(column).unwrap_or("").to_owned(),
                    fields,
                });
            }
        }
    }
    Ok(records)
}

/// A one-line progress report on stderr (only when stderr is a terminal, or when forced).
pub struct Progress {
    total: usize,
    done: usize,
    started: Instant,
    enabled: bool,
}

impl Progress {
    pub fn new(total: usize, force: bool) -> Self {
        Self {
            total,
            done: 0,
            started: Instant::now(),
            enabled: force || std::io::stderr().is_terminal(),
        }
    }

    pub fn advance(&mut self, n: usize) {
        self.done += n;
        if !self.enabled {
            return;
        }
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = self.done as f64 / secs;
        let eta = (self.total - self.done) as f64 / rate.max(1e-9);
        let width = 30;
        let filled = (width * self.done).checked_div(self.total).unwrap_or(width);
        eprint!(
            "\r[{}{}] {}/{} texts  {:.0}/s  ETA {:.0}s ",
            "=".repeat(filled),
            " ".repeat(width - filled),
            self.done,
            self.total,
            rate,
            eta
        );
        if self.done >= self.total {
            eprintln!();
        }
    }
}

/// Redacts and classifies `records` in batches; calls `each` with every record's result.
pub fn score(
    records: &[Record],
    classifier: &dyn Classifier,
    batch: usize,
    progress: &mut Progress,
    mut each: impl FnMut(&Record, &sentio_core::sentiment_api::TextSentiment) -> Result<()>,
) -> Result<()> {
    let engine = Engine::builtin()?;
    let config = edge_config_from_env()?;
    let policy = sentio_core::sentiment_api::sentiment_policy(&engine, &config)?;
    let options = ClassifyOptions {
        sentences: false,
        max_sentences: 0,
        ..ClassifyOptions::default()
    };
    for chunk in records.chunks(batch.max(1)) {
        let texts: Vec<&str> = chunk.iter().map(|r| r.text.as_str()).collect();
        let mut scope = RequestScope::default();
        let (results, _) = sentio_core::sentiment_api::redact_and_classify(
            &engine, &policy, &mut scope, classifier, &texts, "texts", &options,
        )?;
        for (record, result) in chunk.iter().zip(&results) {
            each(record, result)?;
        }
        progress.advance(chunk.len());
    }
    Ok(())
}

/// `sentio classify`.
pub fn classify(
    text: Option<String>,
    input: &Input,
    model: &ModelChoice,
    force_progress: bool,
) -> Result<()> {
    let records = records(text, input)?;
    let classifier = model.load()?;
    let mut progress = Progress::new(records.len(), force_progress && records.len() > 1);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    score(
        &records,
        classifier.as_ref(),
        model.batch,
        &mut progress,
        |record, result| {
            let mut line = serde_json::to_value(result)?;
            if let Value::Object(map) = &mut line {
                map.insert("model".into(), serde_json::to_value(classifier.model())?);
                if !record.fields.is_empty() {
                    map.insert("input".into(), Value::Object(record.fields.clone()));
                }
            }
            serde_json::to_writer(&mut out, &line)?;
            out.write_all(b"\n")?;
            Ok(())
        },
    )?;
    out.flush()?;
    Ok(())
}

/// Accuracy, macro-F1 and the confusion matrix of one set of (gold, predicted) pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct Scorecard {
    pub n: usize,
    pub accuracy: f64,
    pub macro_f1: f64,
    /// Per class: precision, recall, F1, support.
    pub per_class: BTreeMap<&'static str, [f64; 4]>,
    /// `confusion[gold][predicted]`, in the order negative, neutral, positive.
    pub confusion: [[usize; 3]; 3],
}

fn index(label: Label) -> usize {
    Label::ALL.iter().position(|l| *l == label).unwrap_or(0)
}

pub fn scorecard(pairs: &[(Label, Label)]) -> Scorecard {
    let mut confusion = [[0usize; 3]; 3];
    for (gold, predicted) in pairs {
        confusion[index(*gold)][index(*predicted)] += 1;
    }
    let n = pairs.len();
    let correct: usize = (0..3).map(|i| confusion[i][i]).sum();
    let mut per_class = BTreeMap::new();
    // Macro-F1 over the classes that occur (gold or predicted), as scikit-learn computes it: a
    // segment with only negative texts is not marked down for classes it cannot have.
    let mut f1_sum = 0.0;
    let mut classes = 0;
    for (i, label) in Label::ALL.iter().enumerate() {
        let tp = confusion[i][i] as f64;
        let predicted: usize = (0..3).map(|g| confusion[g][i]).sum();
        let support: usize = confusion[i].iter().sum();
        let precision = if predicted == 0 {
            0.0
        } else {
            tp / predicted as f64
        };
        let recall = if support == 0 {
            0.0
        } else {
            tp / support as f64
        };
        let f1 = if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        if support + predicted > 0 {
            f1_sum += f1;
            classes += 1;
        }
        per_class.insert(label.as_str(), [precision, recall, f1, support as f64]);
    }
    Scorecard {
        n,
        accuracy: if n == 0 {
            0.0
        } else {
            correct as f64 / n as f64
        },
        macro_f1: if classes == 0 {
            0.0
        } else {
            f1_sum / f64::from(classes)
        },
        per_class,
        confusion,
    }
}

/// Reads a gold label: `negative|neutral|positive` (any case) or a number (sign decides:
/// below −0.05 negative, above 0.05 positive).
pub fn parse_label(value: &Value) -> Option<Label> {
    match value {
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "negative" | "neg" => Some(Label::Negative),
            "neutral" | "neu" => Some(Label::Neutral),
            "positive" | "pos" => Some(Label::Positive),
            other => other
                .parse::<f64>()
                .ok()
                .and_then(|n| parse_label(&Value::from(n))),
        },
        Value::Number(n) => n.as_f64().map(|x| {
            if x < -0.05 {
                Label::Negative
            } else if x > 0.05 {
                Label::Positive
            } else {
                Label::Neutral
            }
        }),
        _ => None,
    }
}

fn print_scorecard(title: &str, s: &Scorecard) {
    println!(
        "{title}: n={}  accuracy={:.3}  macro-F1={:.3}",
        s.n, s.accuracy, s.macro_f1
    );
}

/// `sentio eval`.
pub fn eval(
    input: &Input,
    label_field: &str,
    segments: &[String],
    model: &ModelChoice,
    plots: Option<&Path>,
    force_progress: bool,
) -> Result<()> {
    let records = read_records(input)?;
    if records.is_empty() {
        bail!("no records to evaluate");
    }
    for (n, r) in records.iter().enumerate() {
        let gold = r.fields.get(label_field);
        if gold.and_then(parse_label).is_none() {
            bail!(
                "record {}: field `{label_field}` is missing or not a label (negative/neutral/positive or a number); choose it with --label-field",
                n + 1
            );
        }
    }
    let classifier = model.load()?;
    let mut progress = Progress::new(records.len(), force_progress);
    let mut all = Vec::new();
    let mut by_segment: BTreeMap<(String, String), Vec<(Label, Label)>> = BTreeMap::new();
    score(
        &records,
        classifier.as_ref(),
        model.batch,
        &mut progress,
        |record, result| {
            let gold = record
                .fields
                .get(label_field)
                .and_then(parse_label)
                .expect("checked above");
            all.push((gold, result.label));
            for segment in segments {
                let value = match record.fields.get(segment) {
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                    None => "(none)".into(),
                };
                by_segment
                    .entry((segment.clone(), value))
                    .or_default()
                    .push((gold, result.label));
            }
            Ok(())
        },
    )?;
    let model_info = classifier.model();
    println!(
        "model {}@{} ({}, {})",
        model_info.id, model_info.version, model_info.engine, model_info.precision
    );
    let overall = scorecard(&all);
    print_scorecard("overall", &overall);
    println!(
        "\n{:<10} {:>9} {:>9} {:>9} {:>8}",
        "class", "precision", "recall", "F1", "support"
    );
    for (label, [p, r, f, n]) in &overall.per_class {
        println!("{label:<10} {p:>9.3} {r:>9.3} {f:>9.3} {n:>8}");
    }
    println!("\nconfusion (rows: gold, columns: predicted)");
    println!(
        "{:<10} {:>9} {:>9} {:>9}",
        "", "negative", "neutral", "positive"
    );
    for (i, label) in Label::ALL.iter().enumerate() {
        let row = overall.confusion[i];
        println!(
            "{:<10} {:>9} {:>9} {:>9}",
            label.as_str(),
            row[0],
            row[1],
            row[2]
        );
    }
    let mut segment_cards = Vec::new();
    if !by_segment.is_empty() {
        println!(
            "\n{:<24} {:>6} {:>9} {:>9}",
            "segment", "n", "accuracy", "macro-F1"
        );
        for ((field, value), pairs) in &by_segment {
            let card = scorecard(pairs);
            println!(
                "{:<24} {:>6} {:>9.3} {:>9.3}",
                format!("{field}={value}"),
                card.n,
                card.accuracy,
                card.macro_f1
            );
            segment_cards.push((format!("{field}={value}"), card));
        }
    }
    if let Some(dir) = plots {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let confusion = dir.join("confusion.svg");
        std::fs::write(&confusion, crate::plot::confusion_svg(&overall))?;
        let segments = dir.join("segments.svg");
        std::fs::write(
            &segments,
            crate::plot::segments_svg(&overall, &segment_cards),
        )?;
        println!("\nplots: {} {}", confusion.display(), segments.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scorecard_matches_hand_computed_values() {
        use Label::*;
        // gold → predicted: 2 of 3 negatives right, the neutral called negative, both
        // positives right.
        let pairs = [
            (Negative, Negative),
            (Negative, Negative),
            (Negative, Positive),
            (Neutral, Negative),
            (Positive, Positive),
            (Positive, Positive),
        ];
        let s = scorecard(&pairs);
        assert_eq!(s.n, 6);
        assert!((s.accuracy - 4.0 / 6.0).abs() < 1e-12);
        assert_eq!(s.confusion, [[2, 0, 1], [1, 0, 0], [0, 0, 2]]);
        // negative: p=2/3 r=2/3 f=2/3; neutral: 0; positive: p=2/3 r=1 f=0.8
        let expected = (2.0 / 3.0 + 0.0 + 0.8) / 3.0;
        assert!((s.macro_f1 - expected).abs() < 1e-12, "{}", s.macro_f1);
        // Only negatives, all right: classes that never occur do not count.
        let only = scorecard(&[(Negative, Negative), (Negative, Negative)]);
        assert_eq!(only.macro_f1, 1.0);
    }

    #[test]
    fn labels_from_words_and_numbers() {
        let cases = [
            (Value::from("Negative"), Some(Label::Negative)),
            (Value::from("pos"), Some(Label::Positive)),
            (Value::from(-2.5), Some(Label::Negative)),
            (Value::from("0.01"), Some(Label::Neutral)),
            (Value::from("angry"), None),
            (Value::Null, None),
        ];
        for (value, want) in cases {
            assert_eq!(parse_label(&value), want, "{value}");
        }
    }
}
