"""The timing loop shared by the Python baselines of `sentio bench heavy` (bench_ort_batch.py,
bench_transformers_batch.py): the same warm-up, stopping rule and percentiles for each."""

import time

import numpy as np


def time_batches(classify, texts, batches, seconds):
    """Per batch size n: `classify` on n texts (cycling through `texts`), 3 warm-up calls, then
    calls for at least `seconds` and 10 calls. Returns the rows `sentio bench heavy` reads:
    {"batch", "p50_ms", "p95_ms", "p99_ms", "texts_per_s"}."""
    results = []
    for n in batches:
        batch = [texts[i % len(texts)] for i in range(n)]
        for _ in range(3):
            classify(batch)
        samples, start = [], time.perf_counter()
        while time.perf_counter() - start < seconds or len(samples) < 10:
            t = time.perf_counter()
            classify(batch)
            samples.append((time.perf_counter() - t) * 1e3)
        results.append({
            "batch": n,
            "p50_ms": float(np.percentile(samples, 50)),
            "p95_ms": float(np.percentile(samples, 95)),
            "p99_ms": float(np.percentile(samples, 99)),
            "texts_per_s": n * 1e3 / float(np.mean(samples)),
        })
    return results
