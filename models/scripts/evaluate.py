"""Evaluate every model on every split; write models/metrics.json and models/metrics.md.

    python evaluate.py --corpus corpus.jsonl --encoder <...>/model --work work/ --models ../

Models: the frozen-encoder + logistic-regression baseline (all-MiniLM-L6-v2 mean-pooled embeddings,
scikit-learn LogisticRegression on the airline train split), and teacher and student in fp32 and
int8, run by onnxruntime from the exported ONNX files. Reported per split of the airline set
(train, dev, test) and, on test, per source. Accuracy, macro-F1, the confusion matrix
(rows = gold, columns = predicted, order negative/neutral/positive), and the expected calibration
error (ECE, 10 bins) of the shipped models before and after temperature scaling.

Every score is on `text`, the corpus redacted as the endpoints redact (prepare_data.py --sentio);
the shipped models are also scored on the airline test split's `raw_text`, to show what redaction
changes.
"""

import argparse
import collections
import json
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from transformers import AutoTokenizer

sys.path.insert(0, str(Path(__file__).parent))
from export import PRECISIONS, ort_logits, session, sha256  # noqa: E402
from train import LABELS, load_encoder, read_corpus  # noqa: E402

SPLITS = ("train", "dev", "test")


def metrics(gold, pred):
    gold, pred = np.asarray(gold), np.asarray(pred)
    confusion = np.zeros((3, 3), dtype=int)
    for g, p in zip(gold, pred):
        confusion[g, p] += 1
    f1s = []
    for c in range(3):
        tp = confusion[c, c]
        prec = tp / confusion[:, c].sum() if confusion[:, c].sum() else 0.0
        rec = tp / confusion[c, :].sum() if confusion[c, :].sum() else 0.0
        f1s.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    return {"n": int(len(gold)), "accuracy": round(float((gold == pred).mean()), 4),
            "macro_f1": round(float(np.mean(f1s)), 4), "f1": [round(float(f), 4) for f in f1s],
            "confusion": confusion.tolist()}


def ece(probs, gold, bins=10):
    conf = probs.max(1)
    correct = probs.argmax(1) == gold
    total = 0.0
    for lo in np.linspace(0, 1, bins, endpoint=False):
        in_bin = (conf > lo) & (conf <= lo + 1 / bins)
        if in_bin.any():
            total += in_bin.mean() * abs(conf[in_bin].mean() - correct[in_bin].mean())
    return round(float(total), 4)


def softmax(z):
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


@torch.no_grad()
def embed(encoder, tokenizer, texts, batch_size=64):
    out = []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(texts[start:start + batch_size], padding=True, truncation=True, max_length=128,
                        return_tensors="pt")
        hidden = encoder(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        out.append(((hidden * mask).sum(1) / mask.sum(1)).numpy())
    return np.concatenate(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--encoder", required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--models", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(2)

    tokenizer = AutoTokenizer.from_pretrained(args.encoder)
    corpus = read_corpus(args.corpus)
    airline = {s: [r for r in corpus if r["source"] == "airline" and r["split"] == s] for s in SPLITS}
    test_by_source = collections.defaultdict(list)
    for r in corpus:
        if r["split"] == "test":
            test_by_source[r["source"]].append(r)
    gold = {s: np.array([LABELS.index(r["label"]) for r in rows]) for s, rows in airline.items()}
    report = {"airline": {}, "test_by_source": {}, "calibration": {}, "raw_text": {}, "files": {}}

    # Baseline: frozen all-MiniLM-L6-v2 + logistic regression.
    encoder = load_encoder(args.encoder).eval()
    features = {s: embed(encoder, tokenizer, [r["text"] for r in rows]) for s, rows in airline.items()}
    baseline = LogisticRegression(max_iter=3000, C=1.0).fit(features["train"], gold["train"])
    report["airline"]["baseline_frozen_lr"] = {s: metrics(gold[s], baseline.predict(features[s])) for s in SPLITS}
    print("baseline done", file=sys.stderr, flush=True)

    for name in ("teacher", "student"):
        config = json.loads((args.models / f"sentiment-{name}" / "config.json").read_text())
        shipped = args.models / f"sentiment-{name}" / "model.onnx"
        for precision in PRECISIONS:
            path = args.work / f"{name}.{precision}.onnx"
            sess = session(path)
            key = f"{name}_{precision}"
            logits = {s: ort_logits(sess, tokenizer, [r["text"] for r in rows]) for s, rows in airline.items()}
            report["airline"][key] = {s: metrics(gold[s], logits[s].argmax(1)) for s in SPLITS}
            report["files"][key] = {"bytes": path.stat().st_size, "sha256": sha256(path),
                                    "ships": sha256(path) == sha256(shipped)}
            if precision == config["precision"]:
                t = config["temperature"]
                report["calibration"][name] = {
                    "temperature": t,
                    "ece_test_raw": ece(softmax(logits["test"]), gold["test"]),
                    "ece_test_calibrated": ece(softmax(logits["test"] / t), gold["test"]),
                }
                raw = ort_logits(sess, tokenizer, [r["raw_text"] for r in airline["test"]])
                report["raw_text"][key] = metrics(gold["test"], raw.argmax(1))
                for source, rows in sorted(test_by_source.items()):
                    src_gold = [LABELS.index(r["label"]) for r in rows]
                    src_logits = ort_logits(sess, tokenizer, [r["text"] for r in rows])
                    report["test_by_source"].setdefault(key, {})[source] = metrics(src_gold, src_logits.argmax(1))
            print(f"{key} done", file=sys.stderr, flush=True)

    (args.models / "metrics.json").write_text(json.dumps(report, indent=1) + "\n")
    lines = ["| model | split | n | accuracy | macro-F1 | F1 neg / neu / pos | confusion (rows gold neg/neu/pos) |",
             "|---|---|---|---|---|---|---|"]
    for key, by_split in report["airline"].items():
        for s in SPLITS:
            m = by_split[s]
            lines.append(f"| {key} | airline {s} | {m['n']} | {m['accuracy']:.4f} | **{m['macro_f1']:.4f}** | "
                         f"{' / '.join(f'{f:.3f}' for f in m['f1'])} | {m['confusion']} |")
    lines += ["", "| shipped model | test source | n | accuracy | macro-F1 |", "|---|---|---|---|---|"]
    for key, sources in report["test_by_source"].items():
        for source, m in sources.items():
            lines.append(f"| {key} | {source} | {m['n']} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} |")
    lines += ["", "| shipped model | temperature | ECE airline test, raw | ECE calibrated |", "|---|---|---|---|"]
    for name, c in report["calibration"].items():
        lines.append(f"| {name} | {c['temperature']} | {c['ece_test_raw']} | {c['ece_test_calibrated']} |")
    lines += ["", "| shipped model | airline test | macro-F1, redacted text (as served) | macro-F1, raw text |",
              "|---|---|---|---|"]
    for key, m in report["raw_text"].items():
        served = report["airline"][key]["test"]
        lines.append(f"| {key} | {m['n']} | {served['macro_f1']:.4f} | {m['macro_f1']:.4f} |")
    (args.models / "metrics.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
