use crate::ModelError;

/// A padded batch of token ids, row-major `rows x cols`, with its attention mask (1 = real token).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBatch {
    pub ids: Vec<i64>,
    pub mask: Vec<i64>,
    pub rows: usize,
    pub cols: usize,
}

impl TokenBatch {
    /// Pads `sequences` to the longest with `pad_id`.
    pub fn pad(sequences: &[&[u32]], pad_id: u32) -> Self {
        let rows = sequences.len();
        let cols = sequences.iter().map(|s| s.len()).max().unwrap_or(0);
        let mut ids = vec![i64::from(pad_id); rows * cols];
        let mut mask = vec![0; rows * cols];
        for (row, seq) in sequences.iter().enumerate() {
            for (col, &id) in seq.iter().enumerate() {
                ids[row * cols + col] = i64::from(id);
                mask[row * cols + col] = 1;
            }
        }
        Self {
            ids,
            mask,
            rows,
            cols,
        }
    }
}

/// Runs the transformer: token ids in, one row of raw (uncalibrated) logits per sequence out.
/// The edge uses tract; the heavy tier picks tract or onnxruntime by measurement.
pub trait Backend: Send + Sync {
    /// Short engine name reported with every answer ("tract", "onnxruntime").
    fn engine(&self) -> &'static str;
    /// Largest batch worth sending at once (the pipeline splits bigger ones).
    fn max_batch(&self) -> usize;
    fn logits(&self, batch: &TokenBatch) -> Result<Vec<Vec<f32>>, ModelError>;
}
