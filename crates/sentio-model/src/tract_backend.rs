use tract_onnx::prelude::*;

use crate::{Backend, ModelError, TokenBatch};

/// The ONNX model, parsed and optimized once by tract, for symbolic batch and sequence sizes.
pub struct TractBackend {
    plan: Arc<TypedRunnableModel>,
    labels: usize,
}

impl TractBackend {
    /// `onnx` takes `input_ids` and `attention_mask` (int64, `[batch, sequence]`) and returns
    /// `logits` (`[batch, labels]`), the interface `models/scripts/export.py` writes.
    pub fn load(onnx: &[u8], labels: usize) -> Result<Self, ModelError> {
        let load = |e: TractError| ModelError::ModelLoad(format!("{e:#}"));
        let mut model = tract_onnx::onnx()
            .model_for_read(&mut &onnx[..])
            .map_err(load)?;
        let shape: TVec<TDim> = tvec![model.sym("batch").into(), model.sym("sequence").into()];
        for input in 0..2 {
            model
                .set_input_fact(
                    input,
                    InferenceFact::dt_shape(i64::datum_type(), shape.clone()),
                )
                .map_err(load)?;
        }
        let plan = model
            .into_optimized()
            .map_err(load)?
            .into_runnable()
            .map_err(load)?;
        Ok(Self { plan, labels })
    }
}

impl Backend for TractBackend {
    fn engine(&self) -> &'static str {
        "tract"
    }

    fn max_batch(&self) -> usize {
        // tract runs one thread; batching only saves per-call overhead, padding costs more.
        8
    }

    fn logits(&self, batch: &TokenBatch) -> Result<Vec<Vec<f32>>, ModelError> {
        let infer = |e: TractError| ModelError::Inference(format!("{e:#}"));
        let shape = [batch.rows, batch.cols];
        let ids = Tensor::from_shape(&shape, &batch.ids).map_err(infer)?;
        let mask = Tensor::from_shape(&shape, &batch.mask).map_err(infer)?;
        let outputs = self
            .plan
            .run(tvec![ids.into(), mask.into()])
            .map_err(infer)?;
        let logits = outputs[0].to_plain_array_view::<f32>().map_err(infer)?;
        let rows: Vec<Vec<f32>> = logits
            .outer_iter()
            .map(|row| row.iter().copied().collect())
            .collect();
        if rows.len() != batch.rows || rows.iter().any(|r| r.len() != self.labels) {
            return Err(ModelError::BadOutput {
                expected: batch.rows,
                got: rows.len(),
            });
        }
        Ok(rows)
    }
}
