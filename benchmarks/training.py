"""Training throughput at equal quality: rose's Lightning module against a plain transformers ``Trainer``.

Two Trainer set-ups: ``trainer`` is the best plain one a user would write (``DataCollatorWithPadding`` dynamic
padding, length-grouped batches (``group_by_length``), the same device as rose), ``trainer-pad128`` the reference code's (every text
padded to ``max_length`` 128). Same classifier, same training examples (SIB-200 English train, ``--per-label`` per
label, rose's stratified train part), same hyperparameters (AdamW, ``--lr``, batch 16, linear schedule, ``--epochs``,
one evaluation of the dev split per epoch). Each side then predicts the human test split (SIB-200 English test;
rose's bundled English topic sentences where ../shared/data is absent), so speed is compared next to test
macro-F1. Each side runs in its own subprocess, so peak memory (``ru_maxrss``) is its own. Goal: rose at least 4x
the best Trainer's samples per second at equal test macro-F1 (within one point).

    python benchmarks/training.py                       # tiny random model and the offline e5 encoder
    python benchmarks/training.py --models tiny --epochs 2
    python benchmarks/training.py --freeze               # rose with frozen word embeddings as a third row

``e5`` is ``rose.assets.resolve_model("multilingual-e5-small")`` when that works, else a randomly initialised
encoder of the same shape (XLM-R, 12 layers, hidden 384, 250k vocabulary), which costs the same to train.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
DATA = f"human:{SHARED if SHARED.exists() else ROOT / 'rose' / 'resources' / 'topic'}"
CACHE = Path(os.environ.get("ROSE_BENCH_CACHE", "/tmp/rose-bench"))
TARGET = 4.0
SIDES = ("trainer", "trainer-pad128", "rose")


def model_folder(name: str) -> tuple[Path, str]:
    """(folder, description) of a benchmark model."""
    from tests.tiny import make_tiny_classifier

    if name == "tiny":
        return make_tiny_classifier(CACHE / "tiny"), "tiny random XLM-R (2 layers, hidden 32)"
    if name == "e5":
        try:
            from rose.assets import resolve_model

            return Path(resolve_model("multilingual-e5-small")), "multilingual-e5-small (offline asset)"
        except Exception:
            folder = CACHE / "e5-shaped"
            if not (folder / "model.safetensors").exists():
                _e5_shaped(folder)
            return folder, "random encoder shaped like multilingual-e5-small (12 layers, hidden 384, 250k vocab)"
    return Path(name), name


def _e5_shaped(folder: Path) -> None:
    import torch
    from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaModel

    from tests.tiny import make_tiny_classifier

    tokenizer = AutoTokenizer.from_pretrained(make_tiny_classifier(CACHE / "tiny"))
    config = XLMRobertaConfig(
        vocab_size=250037,
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=1536,
        max_position_embeddings=514,
        pad_token_id=1,
        type_vocab_size=1,
    )
    torch.manual_seed(0)
    XLMRobertaModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def setting(args: argparse.Namespace, folder: Path):
    from rose.train.config import TrainConfig
    from rose.train.fit import prepare

    config = TrainConfig(task="topic", language="en", data=DATA, eval=[DATA], classifier=str(folder), seeds=[1],
                         per_label=args.per_label, max_epochs=args.epochs, patience=args.epochs + 1,
                         learning_rate=args.lr,
                         num_threads=args.threads, freeze_embeddings=args.worker == "rose-frozen", log_models=False,
                         bf16="false")  # fmt: skip
    return prepare(config)


def run_rose(args: argparse.Namespace, folder: Path) -> dict:
    from rose.train import evaluate
    from rose.train.fit import fit_seed, split_index

    s = setting(args, folder)
    fitted = fit_seed(s, 1)
    n_train = len(split_index(s.train_data, s.config.dev_fraction, 1)[0])
    test = s.eval_sets[0]
    probs = evaluate.predict_proba(fitted.model, s.tokenizer, test.texts, batch_size=64, max_length=128, bf16=False)
    return {"train_s": fitted.train_s, "samples": n_train * fitted.epochs,
            "test_f1": _macro_f1(s, test.labels, probs.argmax(axis=1))}  # fmt: skip


def _macro_f1(s, labels: list[str], predicted) -> float:
    """rose's one macro-F1 (over every label of the task), the same for every side."""
    from rose.metrics import classification_metrics

    index = {label: i for i, label in enumerate(s.label_names)}
    truth = [index[lab] for lab in labels]
    return float(classification_metrics(truth, [int(p) for p in predicted], s.label_names)["macro_f1"])


def run_trainer(args: argparse.Namespace, folder: Path) -> dict:
    """A plain ``Trainer``: dynamic padding and length grouping (``trainer``), or every text padded to 128
    (``trainer-pad128``, the reference code's set-up). Same device as rose: the Trainer's own choice."""
    import torch
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer, TrainingArguments

    from rose.train.fit import split_index

    s = setting(args, folder)
    pad128 = args.worker == "trainer-pad128"
    train_idx, dev_idx = split_index(s.train_data, s.config.dev_fraction, 1)
    index = {label: i for i, label in enumerate(s.label_names)}

    def dataset(texts, labels):
        enc = s.tokenizer(texts, truncation=True, max_length=128, padding="max_length" if pad128 else False)
        return [{"input_ids": ids, "attention_mask": mask, "labels": index[label]}
                for ids, mask, label in zip(enc["input_ids"], enc["attention_mask"], labels, strict=True)]  # fmt: skip

    def split(idx):
        return dataset([s.train_data.texts[i] for i in idx], [s.train_data.labels[i] for i in idx])

    torch.manual_seed(1)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=len(s.label_names))
    targs = TrainingArguments(output_dir=str(CACHE / "trainer-out"), learning_rate=args.lr,
                              per_device_train_batch_size=16, per_device_eval_batch_size=64,
                              num_train_epochs=args.epochs, eval_strategy="epoch", save_strategy="no",
                              report_to=[], logging_strategy="no", seed=1, **_length_grouping(not pad128),
                              dataloader_num_workers=0, disable_tqdm=True)  # fmt: skip
    trainer = Trainer(model=model, args=targs, train_dataset=split(train_idx), eval_dataset=split(dev_idx),
                      data_collator=DataCollatorWithPadding(s.tokenizer))  # fmt: skip
    start = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - start
    test = s.eval_sets[0]
    predicted = trainer.predict(dataset(test.texts, test.labels)).predictions.argmax(axis=1)
    return {"train_s": train_s, "samples": len(train_idx) * args.epochs,
            "test_f1": _macro_f1(s, test.labels, predicted)}  # fmt: skip


def _length_grouping(on: bool) -> dict:
    """``group_by_length=True`` (transformers < 5.x) or ``train_sampling_strategy="group_by_length"`` (newer)."""
    import inspect

    from transformers import TrainingArguments

    if "train_sampling_strategy" in inspect.signature(TrainingArguments.__init__).parameters:
        return {"train_sampling_strategy": "group_by_length" if on else "random"}
    return {"group_by_length": on}


def worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    folder, _ = model_folder(args.model)
    out = (run_trainer if args.worker.startswith("trainer") else run_rose)(args, folder)
    out["samples_per_s"] = out["samples"] / out["train_s"]
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(out))


def measure(args: argparse.Namespace, model: str, side: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", side, "--model", model, "--per-label", str(args.per_label),
           "--epochs", str(args.epochs), "--threads", str(args.threads), "--lr", str(args.lr)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"{side} on {model} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="tiny,e5", help="comma-separated: tiny, e5 or a model folder")
    parser.add_argument("--per-label", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-5, help="learning rate of every side")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--freeze", action="store_true", help="also time rose with frozen word embeddings")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    sides = [*SIDES] + (["rose-frozen"] if args.freeze else [])
    print(f"{'model':<12} {'side':<15} {'samples/s':>10} {'test F1':>8} {'peak RSS MB':>12} {'train s':>8}  vs trainer")
    for model in args.models.split(","):
        _, description = model_folder(model)
        results = {side: measure(args, model, side) for side in sides}
        base = results["trainer"]
        for side, r in results.items():
            ratio = r["samples_per_s"] / base["samples_per_s"]
            gap = 100 * (r["test_f1"] - base["test_f1"])
            mark = (
                ""
                if not side.startswith("rose")
                else (
                    f" ({'goal met' if ratio >= TARGET and gap >= -1 else f'goal {TARGET:.0f}x at equal F1 not met'}"
                    f"; test F1 {gap:+.1f} points)"
                )
            )
            print(f"{model:<12} {side:<15} {r['samples_per_s']:>10.1f} {r['test_f1']:>8.3f} {r['peak_rss_mb']:>12.0f} "
                  f"{r['train_s']:>8.1f}  {ratio:.2f}x{mark}")  # fmt: skip
        print(
            f"  {model}: {description}; {args.per_label} per label, {args.epochs} epoch(s), lr {args.lr}, "
            f"{args.threads} threads; test: {DATA.removeprefix('human:')} (topic/en test split)"
        )


if __name__ == "__main__":
    main()
