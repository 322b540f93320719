"""onnxruntime's logits for the committed parity sentences, computed on this machine.

    python parity_here.py --models models --out target/parity-here

The committed references (models/parity/<name>.json, written by export.py) were made on one CPU.
onnxruntime picks its int8 matrix kernels by CPU (AVX2's u8 x s8 products saturate in 16 bits,
VNNI's do not), so a full-int8 model's logits move from one CPU to another: in CI the teacher's
label flipped on a sentence whose reference logits are 0.30 apart. The Rust `ort` backend is the
same engine on the same file, so it is checked against Python onnxruntime run here, where the two
must agree to float rounding. tract keeps the committed references (it has its own tolerance).

Needs only numpy and onnxruntime (the tools venv of scripts/lib.sh has both). Writes
<out>/<name>.json with the committed file's schema: the same texts and token ids, this machine's
logits.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort


def parity_logits(sess: ort.InferenceSession, input_ids: list[int]) -> list[float]:
    """One parity case's logits as the references store them: batch 1, no padding, rounded."""
    ids = np.array([input_ids], dtype=np.int64)
    logits = sess.run(["logits"], {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0]
    return [round(float(x), 6) for x in logits]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, required=True, help="the repository's models/ folder")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    for committed in sorted((args.models / "parity").glob("*.json")):
        parity = json.loads(committed.read_text(encoding="utf-8"))
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(args.models / f"sentiment-{committed.stem}" / "model.onnx"), options,
                                    providers=["CPUExecutionProvider"])
        for case in parity["cases"]:
            case["logits"] = parity_logits(sess, case["input_ids"])
        parity["reference"] = f"onnxruntime {ort.__version__}, CPU, batch 1, run on this machine"
        (args.out / committed.name).write_text(json.dumps(parity, indent=1, ensure_ascii=False) + "\n")
        print(f"{committed.stem}: {len(parity['cases'])} sentences -> {args.out / committed.name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
