"""onnxruntime batch throughput for `sentio bench heavy`: the same teacher model and texts, one
thread, tokenized by the `tokenizers` package from the same tokenizer.json.

    python bench_ort_batch.py MODEL.onnx TOKENIZER.json SECONDS < request.json
    (request: {"texts": [...], "batches": [1, 8, 32], "max_tokens": 128})

Per batch: tokenize (padding to the batch's longest, truncation at max_tokens), run, softmax — the
Python counterpart of the heavy tier's model path (no redaction, no JSON). Prints a JSON list of
{"batch", "p50_ms", "p95_ms", "p99_ms", "texts_per_s"}.
"""

import json
import sys

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from bench_timing import time_batches


def main() -> int:
    model, tokenizer_path, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    request = json.load(sys.stdin)
    tokenizer = Tokenizer.from_file(tokenizer_path)
    tokenizer.no_padding()
    tokenizer.enable_truncation(request.get("max_tokens", 128))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    sess = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    texts = request["texts"]

    def classify(batch):
        encodings = tokenizer.encode_batch(batch)
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, e in enumerate(encodings):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
        (logits,) = sess.run(["logits"], {"input_ids": ids, "attention_mask": mask})
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)

    results = time_batches(classify, texts, request["batches"], seconds)
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
