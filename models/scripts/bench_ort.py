"""onnxruntime latency for `sentio bench classify`: same model, same token ids, one thread.

    python bench_ort.py MODEL.onnx SECONDS < inputs.json     (inputs: a JSON list of token-id lists)

Prints a JSON list: p50 milliseconds per input, in input order.
"""

import json
import sys
import time

import numpy as np
import onnxruntime as ort


def main() -> int:
    model, seconds = sys.argv[1], float(sys.argv[2])
    inputs = json.load(sys.stdin)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    sess = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    p50s = []
    for ids in inputs:
        feed = {"input_ids": np.array([ids], dtype=np.int64), "attention_mask": np.ones((1, len(ids)), dtype=np.int64)}
        for _ in range(3):
            sess.run(["logits"], feed)
        samples, start = [], time.perf_counter()
        while time.perf_counter() - start < seconds or len(samples) < 20:
            t = time.perf_counter()
            sess.run(["logits"], feed)
            samples.append((time.perf_counter() - t) * 1e3)
        p50s.append(float(np.percentile(samples, 50)))
    json.dump(p50s, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
