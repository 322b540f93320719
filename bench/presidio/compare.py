"""Sentio's redaction engine against Microsoft Presidio's pattern recognizers, on one labeled set.

    bench/presidio/compare.py [--sentio target/release/sentio] [--repeat 3]

Builds a labeled support-chat set from real formats (valid values: Luhn cards with issuer
prefixes, mod-97 IBANs, SSNs that follow the area/group/serial rules, mod-11 NHS numbers,
Base58Check bitcoin addresses, routable IPs, E.164 and national phones, e-mails, URLs; and
look-alikes that must not be reported: Luhn-invalid cards, bad IBAN checksums, impossible SSNs,
bad NHS checksums, order numbers, timestamps, version strings), plus chat lines without PII.
Both engines run single-threaded over the same lines:

* Presidio (presidio-analyzer, its predefined recognizers) with a blank spaCy English pipeline —
  no spaCy model can be downloaded here, so its NER-based recognizers (PERSON, LOCATION, ...)
  find nothing and what remains is its pattern recognizers, validators and context words;
* Sentio: `sentio redact` reading the same lines from stdin (one process), timed by the engine's
  own per-text `timing.redact_ms` and, more conservatively, by the process's wall time.

Prints per-entity precision/recall for both and the throughput ratio, as Markdown.
"""

import argparse
import base64
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time

ENTITIES = ["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN",
            "IP_ADDRESS", "URL", "UK_NHS", "CRYPTO"]

rng = random.Random(20261127)


def luhn_complete(prefix, length):
    digits = [int(d) for d in prefix] + [rng.randrange(10) for _ in range(length - len(prefix) - 1)]
    for check in range(10):
        candidate = digits + [check]
        total = 0
        for i, d in enumerate(reversed(candidate)):
            if i % 2 == 1:
                d *= 2
                if d > 9:
                    d -= 9
            total += d
        if total % 10 == 0:
            return "".join(map(str, candidate))
    raise AssertionError


def group(digits, sizes, sep):
    out, i = [], 0
    for s in sizes:
        out.append(digits[i:i + s])
        i += s
    return sep.join(out)


def card(valid):
    prefix, length, sizes = rng.choice([("4", 16, (4, 4, 4, 4)), ("51", 16, (4, 4, 4, 4)),
                                        ("55", 16, (4, 4, 4, 4)), ("37", 15, (4, 6, 5))])
    number = luhn_complete(prefix, length)
    if not valid:  # break the Luhn check digit
        number = number[:-1] + str((int(number[-1]) + rng.randrange(1, 10)) % 10)
    return group(number, sizes, rng.choice([" ", "-", ""]))


def iban(valid):
    country, bban_len = rng.choice([("GB", 18), ("DE", 18), ("FR", 23), ("NL", 14)])
    if country == "GB":
        bban = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4)) + \
            "".join(str(rng.randrange(10)) for _ in range(14))
    elif country == "NL":
        bban = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4)) + \
            "".join(str(rng.randrange(10)) for _ in range(10))
    else:
        bban = "".join(str(rng.randrange(10)) for _ in range(bban_len))
    rearranged = bban + country + "00"
    numeric = "".join(str(int(c, 36)) for c in rearranged)
    check = 98 - int(numeric) % 97
    if not valid:
        check = (check + rng.randrange(1, 96)) % 97 + 2
        check = min(check, 98)
    code = f"{country}{check:02d}{bban}"
    if rng.random() < 0.5:
        code = " ".join(code[i:i + 4] for i in range(0, len(code), 4))
    return code


def ssn(valid):
    if valid:
        area = rng.choice([a for a in range(1, 900) if a != 666])
        return f"{area:03d}-{rng.randrange(1, 100):02d}-{rng.randrange(1, 10000):04d}"
    return rng.choice([f"000-{rng.randrange(1, 100):02d}-{rng.randrange(1, 10000):04d}",
                       f"666-{rng.randrange(1, 100):02d}-{rng.randrange(1, 10000):04d}",
                       f"{rng.randrange(1, 600):03d}-00-{rng.randrange(1, 10000):04d}",
                       f"{rng.randrange(1, 600):03d}-{rng.randrange(1, 100):02d}-0000"])


def nhs(valid):
    while True:
        digits = [rng.randrange(10) for _ in range(9)]
        remainder = sum(d * w for d, w in zip(digits, range(10, 1, -1))) % 11
        check = 11 - remainder
        if check == 11:
            check = 0
        if check == 10:
            continue
        if not valid:
            check = (check + rng.randrange(1, 10)) % 10
        s = "".join(map(str, digits + [check]))
        return f"{s[:3]} {s[3:6]} {s[6:]}"


B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def bitcoin():
    payload = bytes([0]) + bytes(rng.randrange(256) for _ in range(20))
    checksum = hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    raw = payload + checksum
    n = int.from_bytes(raw, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return "1" * (len(raw) - len(raw.lstrip(b"\0"))) + out


FIRST = ["maria", "john", "li", "amara", "olga", "tom", "priya", "sam"]
LAST = ["gonzalez", "smith", "wei", "okafor", "ivanova", "brown", "patel", "lee"]
DOMAINS = ["gmail.com", "example.co.uk", "outlook.de", "mail.example.org"]


def email():
    return f"{rng.choice(FIRST)}.{rng.choice(LAST)}{rng.randrange(100)}@{rng.choice(DOMAINS)}"


def phone():
    return rng.choice([
        f"({rng.choice([212, 415, 617, 312, 206])}) {rng.randrange(200, 999)}-{rng.randrange(10000):04d}",
        f"+1 {rng.choice([212, 415, 617])} {rng.randrange(200, 999)} {rng.randrange(10000):04d}",
        f"+44 20 7946 {rng.randrange(10000):04d}",
        f"+44 7700 900{rng.randrange(1000):03d}",
        f"+49 30 {rng.randrange(1000000, 9999999)}",
    ])


def ip():
    if rng.random() < 0.7:
        return ".".join(str(x) for x in [rng.randrange(1, 224), rng.randrange(256),
                                          rng.randrange(256), rng.randrange(1, 255)])
    return f"2001:db8:{rng.randrange(65536):x}::{rng.randrange(65536):x}"


def url():
    return rng.choice([f"https://www.example.com/orders/{rng.randrange(10**6)}",
                       f"http://shop.example.org/track?id={rng.randrange(10**8)}",
                       f"https://support.example.co.uk/ticket/{rng.randrange(10**5)}"])


VALID = {
    "EMAIL_ADDRESS": (email, ["you can reach me at {}", "my email is {} thanks", "send it to {} please"]),
    "PHONE_NUMBER": (phone, ["call me on {} after 5", "my number is {}", "phone {} if it fails again"]),
    "CREDIT_CARD": (lambda: card(True), ["my card {} was charged twice", "refund to card {}", "visa {} expired"]),
    "IBAN_CODE": (lambda: iban(True), ["please wire it to {}", "my iban is {}", "account {} for the refund"]),
    "US_SSN": (lambda: ssn(True), ["my ssn is {}", "social security number {} on file", "ssn: {}"]),
    "IP_ADDRESS": (ip, ["the router says {}", "blocked from ip {}", "my ip address is {}"]),
    "URL": (url, ["see {} for the order", "the link {} is broken", "page {} shows an error"]),
    "UK_NHS": (lambda: nhs(True), ["my nhs number is {}", "nhs no {} please check", "NHS {}"]),
    "CRYPTO": (bitcoin, ["send the btc to {}", "my bitcoin wallet {}", "refund to wallet {}"]),
}

LOOK_ALIKES = [
    ("CREDIT_CARD", lambda: card(False), ["my card {} was charged twice", "card number {}"]),
    ("IBAN_CODE", lambda: iban(False), ["my iban is {}", "wire it to {}"]),
    ("US_SSN", lambda: ssn(False), ["my ssn is {}", "ssn: {}"]),
    ("UK_NHS", lambda: nhs(False), ["my nhs number is {}", "NHS {}"]),
    ("ORDER", lambda: f"#{rng.randrange(10**7, 10**9)}", ["order {} never arrived", "ticket {} still open"]),
    ("TIMESTAMP", lambda: f"2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d} {rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}",
     ["it failed at {}", "logged {} in the app"]),
    ("VERSION", lambda: f"v{rng.randrange(1, 20)}.{rng.randrange(10)}.{rng.randrange(30)}", ["after updating to {} it crashes"]),
    ("AMOUNT", lambda: f"{rng.randrange(10, 5000)}.{rng.randrange(100):02d} USD", ["I was charged {} twice"]),
]

CLEAN = ["where is my parcel, it was due on monday", "thanks, the agent sorted it out quickly",
         "this is the third time I ask for a refund", "can I change the delivery address please",
         "the app crashes every time I open the basket", "great service, very happy with the new plan",
         "nobody answers the phone, I am fed up", "ok", "the tracking page has not moved in a week",
         "I would like to cancel my subscription at the end of the month"]


def build_set(per_entity=60, per_look_alike=40, clean=400):
    rows = []
    for entity, (make, templates) in VALID.items():
        for _ in range(per_entity):
            value, template = make(), rng.choice(templates)
            start = template.index("{}")
            text = template.format(value)
            rows.append({"text": text, "spans": [[entity, start, start + len(value)]]})
    for _kind, make, templates in LOOK_ALIKES:
        for _ in range(per_look_alike):
            rows.append({"text": rng.choice(templates).format(make()), "spans": []})
    for _ in range(clean):
        rows.append({"text": rng.choice(CLEAN), "spans": []})
    rng.shuffle(rows)
    return rows


def presidio_engine():
    import spacy
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    path = os.path.join(tempfile.mkdtemp(), "blank_en")
    spacy.blank("en").to_disk(path)
    nlp = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": path}])
    return AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])


def run_presidio(rows, repeat):
    engine = presidio_engine()
    found = [[(r.entity_type, r.start, r.end) for r in engine.analyze(row["text"], language="en")]
             for row in rows]
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for row in rows:
            engine.analyze(row["text"], language="en")
        best = min(best, time.perf_counter() - started)
    return found, best


def run_sentio(rows, binary, repeat):
    """One `sentio redact` process reads the lines 1 + `repeat` times: the first pass warms the
    regex engines' lazily built automata (as Presidio's untimed first pass does), the best later
    pass is the engine time; the process's wall time is per pass, start-up and JSON included."""
    passes = repeat + 1
    text = "".join(row["text"] + "\n" for row in rows).encode() * passes
    started = time.perf_counter()
    out = subprocess.run([binary, "redact"], input=text, capture_output=True, check=True).stdout
    wall = (time.perf_counter() - started) / passes
    answers = [json.loads(line) for line in out.splitlines()]
    assert len(answers) == len(rows) * passes
    found = [[(f["entity_type"], f["input"]["chars"][0], f["input"]["chars"][1])
              for f in a["findings"]] for a in answers[:len(rows)]]
    best_engine = min(
        sum(a["timing"]["redact_ms"] for a in answers[p * len(rows):(p + 1) * len(rows)]) / 1000
        for p in range(1, passes))
    return found, best_engine, wall


def score(rows, found):
    table = {e: {"tp": 0, "fp": 0, "fn": 0} for e in ENTITIES}
    for row, hits in zip(rows, found):
        truth = [(e, s, t) for e, s, t in row["spans"]]
        for e, s, t in truth:
            if any(he == e and hs < t and s < ht for he, hs, ht in hits):
                table[e]["tp"] += 1
            else:
                table[e]["fn"] += 1
        for he, hs, ht in hits:
            if he in table and not any(e == he and hs < t and s < ht for e, s, t in truth):
                table[he]["fp"] += 1
    return table


def pr(cell):
    tp, fp, fn = cell["tp"], cell["fp"], cell["fn"]
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    return precision, recall


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentio", default="target/release/sentio")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = build_set()
    total_bytes = sum(len(r["text"].encode()) + 1 for r in rows)
    p_found, p_secs = run_presidio(rows, args.repeat)
    s_found, s_engine, s_wall = run_sentio(rows, args.sentio, args.repeat)
    p_table, s_table = score(rows, p_found), score(rows, s_found)

    import importlib.metadata
    import spacy
    print(f"labeled set: {len(rows)} lines, {total_bytes / 1024:.1f} KiB, "
          f"{sum(len(r['spans']) for r in rows)} entities, "
          f"{sum(1 for r in rows if not r['spans'])} lines without any "
          f"({len(LOOK_ALIKES) * 40} of them look-alikes); presidio-analyzer "
          f"{importlib.metadata.version('presidio-analyzer')}, "
          f"spaCy {spacy.__version__} (blank 'en')\n")
    print("| entity | Presidio precision | Presidio recall | Sentio precision | Sentio recall |")
    print("|---|---:|---:|---:|---:|")
    for e in ENTITIES:
        (pp, prc), (sp, src) = pr(p_table[e]), pr(s_table[e])
        print(f"| {e} | {pp:.3f} | {prc:.3f} | {sp:.3f} | {src:.3f} |")
    micro = lambda t: pr({k: sum(c[k] for c in t.values()) for k in ("tp", "fp", "fn")})
    (pp, prc), (sp, src) = micro(p_table), micro(s_table)
    print(f"| all (micro) | {pp:.3f} | {prc:.3f} | {sp:.3f} | {src:.3f} |")
    print()
    mb = total_bytes / 1e6
    print("| engine | seconds (best of %d) | lines/s | MB/s | Sentio vs Presidio |" % args.repeat)
    print("|---|---:|---:|---:|---:|")
    print(f"| Presidio analyze (pattern recognizers) | {p_secs:.3f} | {len(rows) / p_secs:.0f} | {mb / p_secs:.3f} | 1.0× |")
    print(f"| Sentio engine (timing.redact_ms) | {s_engine:.4f} | {len(rows) / s_engine:.0f} | {mb / s_engine:.2f} | {p_secs / s_engine:.0f}× |")
    print(f"| Sentio `sentio redact` process, wall per pass | {s_wall:.4f} | {len(rows) / s_wall:.0f} | {mb / s_wall:.2f} | {p_secs / s_wall:.0f}× |")


if __name__ == "__main__":
    main()
