"""Training at equal quality: rose's Lightning module against a plain transformers ``Trainer``, per fine-tune end to
end (process start, load, train, evaluate, save) and per sample.

Trainer set-ups: ``trainer`` is the best plain one a user would write for a full fine-tune (``DataCollatorWithPadding``
dynamic padding, length-grouped training batches, the same device as rose), ``trainer-pad128`` the reference code's
(every text padded to ``max_length`` 128); with ``--top-layers N``, ``trainer-top`` is the dynamic-padding Trainer
given the same frozen layers as rose's set-up (embeddings and every layer below the top N frozen, as a competent user
would), against ``rose-top`` (rose's ``train_top_layers N``, whose frozen trunk is computed once, from a cold cache
here). Same classifier, same training examples (SIB-200 English train, ``--per-label`` per label, rose's stratified
train part), same hyperparameters (AdamW, ``--lr``, batch 16, linear schedule, ``--epochs``, one evaluation of the dev
split per epoch). Each side then predicts the human test split (SIB-200 English test; rose's bundled English topic
sentences where ../shared/data is absent) and saves its model (the Trainer ``save_model``; rose its delta, as
``rose train`` logs it). Test macro-F1 is rose's one macro-F1 on every side, each prediction scored against the
label it was made for (``Trainer.predict`` iterates a length-grouped order when training is length-grouped, so its
``label_ids`` are used, never the test set's order). Each side runs in its own subprocess: ``e2e s`` is that
process's wall time, peak memory (``ru_maxrss``) its own. Goals: rose at least 4x the best full Trainer's samples
per second, and ``rose-top`` at least 2x ``trainer-top`` per fine-tune end to end, each at equal test macro-F1
(within one point). With ``--bf16`` every side trains under bf16 autocast (rose's ``bf16: auto`` on hardware that
computes bf16 natively, the demo's set-up there; the ``Trainer``'s ``bf16=True``); rose still scores the test set in
fp32, as its cells do. Default: fp32 on every side.

    python benchmarks/training.py --models e5 --per-label 20 --epochs 8 --lr 1e-4            # full fine-tunes
    python benchmarks/training.py --models e5 --per-label 12 --epochs 8 --lr 3e-4 --top-layers 4 --max-length 64
    python benchmarks/training.py --models e5 --per-label 12 --epochs 8 --lr 3e-4 --top-layers 4 --max-length 64 --bf16
    python benchmarks/training.py --models tiny --epochs 2                                   # a quick check

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


def train_config(args: argparse.Namespace, folder: Path):
    from rose.train.config import TrainConfig

    top = args.top_layers if args.worker.endswith("-top") else 0
    return TrainConfig(task="topic", language="en", data=DATA, eval=[DATA], classifier=str(folder), seeds=[1],
                       per_label=args.per_label, max_epochs=args.epochs, patience=args.epochs + 1,
                       learning_rate=args.lr, batch_size=16, max_length=args.max_length, num_threads=args.threads,
                       freeze_embeddings=args.worker == "rose-frozen" or bool(top), train_top_layers=top,
                       log_models=False, bf16="true" if args.bf16 else "false")  # fmt: skip


def run_rose(args: argparse.Namespace, folder: Path) -> dict:
    from rose.train import delta
    from rose.train.fit import fit_seed, predict, prepare, split_index

    s = prepare(train_config(args, folder))
    fitted = fit_seed(s, 1)
    n_train = len(split_index(s.train_data, s.config.dev_fraction, 1)[0])
    test = s.eval_sets[0]
    probs = predict(s, fitted, test.texts)  # as `rose train` scores its evaluation sets: fp32, above a cached trunk
    delta.save_delta(CACHE / f"saved-{args.worker}", fitted.model, reference=s.reference, always=s.head_keys,
                      base_id=str(folder), base_path=s.base_path, digest=s.base_digest,
                      max_length=args.max_length)  # fmt: skip
    return {"train_s": fitted.train_s, "samples": n_train * fitted.epochs,
            "test_f1": _macro_f1(s.label_names, test.labels, probs.argmax(axis=1))}  # fmt: skip


def _macro_f1(label_names: list[str], labels: list[str], predicted) -> float:
    """rose's one macro-F1 (over every label of the task), the same for every side."""
    from rose.metrics import classification_metrics

    index = {label: i for i, label in enumerate(label_names)}
    truth = [index[lab] for lab in labels]
    return float(classification_metrics(truth, [int(p) for p in predicted], label_names)["macro_f1"])


def run_trainer(args: argparse.Namespace, folder: Path) -> dict:
    """A plain ``Trainer``: dynamic padding and length grouping (``trainer``; ``trainer-top`` with rose's frozen
    layers), or every text padded to 128 (``trainer-pad128``, the reference code's set-up). Same device as rose:
    the Trainer's own choice. Data are read with rose's loaders (no model is loaded for them)."""
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,  # fmt: skip
    )

    from rose.tasks import get_task
    from rose.train.fit import _load_eval_sets, load_training_data, split_index
    from rose.train.module import freeze_below_top_layers

    config = train_config(args, folder)
    label_names = list(get_task("topic").labels)
    data, test = load_training_data(config), _load_eval_sets(config)[0]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    pad128 = args.worker == "trainer-pad128"
    length = 128 if pad128 else args.max_length
    train_idx, dev_idx = split_index(data, config.dev_fraction, 1)
    index = {label: i for i, label in enumerate(label_names)}

    def dataset(texts, labels):
        enc = tokenizer(texts, truncation=True, max_length=length, padding="max_length" if pad128 else False)
        return [{"input_ids": ids, "attention_mask": mask, "labels": index[label]}
                for ids, mask, label in zip(enc["input_ids"], enc["attention_mask"], labels, strict=True)]  # fmt: skip

    def split(idx):
        return dataset([data.texts[i] for i in idx], [data.labels[i] for i in idx])

    torch.manual_seed(1)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=len(label_names))
    if config.train_top_layers:
        freeze_below_top_layers(model, config.train_top_layers)
    targs = TrainingArguments(output_dir=str(CACHE / f"trainer-out-{args.worker}"), learning_rate=args.lr,
                              per_device_train_batch_size=16, per_device_eval_batch_size=64,
                              num_train_epochs=args.epochs, eval_strategy="epoch", save_strategy="no",
                              report_to=[], logging_strategy="no", seed=1, **_length_grouping(not pad128),
                              dataloader_num_workers=0, disable_tqdm=True, bf16=args.bf16,
                              use_cpu=args.bf16 and not torch.cuda.is_available())  # fmt: skip
    trainer = Trainer(model=model, args=targs, train_dataset=split(train_idx), eval_dataset=split(dev_idx),
                      data_collator=DataCollatorWithPadding(tokenizer))  # fmt: skip
    start = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - start
    out = trainer.predict(dataset(test.texts, test.labels))
    # score each prediction against its own label: with length grouping the order is not the test set's
    truth = [label_names[i] for i in out.label_ids]
    assert sorted(truth) == sorted(test.labels), "Trainer.predict lost or repeated test examples"
    trainer.save_model(str(CACHE / f"saved-{args.worker}"))
    return {"train_s": train_s, "samples": len(train_idx) * args.epochs,
            "test_f1": _macro_f1(label_names, truth, out.predictions.argmax(axis=1)),
            "test_f1_in_test_order": _macro_f1(label_names, test.labels, out.predictions.argmax(axis=1))}  # fmt: skip


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
    import tempfile

    cmd = [sys.executable, __file__, "--worker", side, "--model", model, "--per-label", str(args.per_label),
           "--epochs", str(args.epochs), "--threads", str(args.threads), "--lr", str(args.lr),
           "--max-length", str(args.max_length), "--top-layers", str(args.top_layers),
           *(["--bf16"] if args.bf16 else [])]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="rose-bench-trunk-") as cold:  # rose-top starts from a cold trunk cache
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "ROSE_TRUNK_CACHE": cold}
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        e2e = time.perf_counter() - start
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"{side} on {model} failed:\n{proc.stderr[-3000:]}")
    return {**json.loads(lines[-1][len("RESULT ") :]), "e2e_s": e2e}


def _ratio_line(results: dict, ours: str, theirs: str, key: str, goal: float, what: str) -> str:
    a, b = results[ours], results[theirs]
    ratio = (a[key] / b[key]) if key == "samples_per_s" else (b[key] / a[key])
    gap = 100 * (a["test_f1"] - b["test_f1"])
    met = "goal met" if ratio >= goal and gap >= -1 else f"goal {goal:g}x at equal F1 (within 1 point) not met"
    return f"  {ours} vs {theirs}: {ratio:.2f}x {what}, test F1 {gap:+.1f} points ({met})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="tiny,e5", help="comma-separated: tiny, e5 or a model folder")
    parser.add_argument("--per-label", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-5, help="learning rate of every side")
    parser.add_argument("--max-length", type=int, default=128, help="max tokens (the pad-to-128 side pads to 128)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--top-layers",
        type=int,
        default=0,
        help="also time trainer-top and rose-top: only the top N layers trained (rose: trunk cached)",
    )
    parser.add_argument("--sides", default="", help="comma-separated sides (default: the full fine-tunes, and the "
                                                    "frozen-layer pair with --top-layers)")  # fmt: skip
    parser.add_argument("--bf16", action="store_true", help="every side trains under bf16 autocast (rose's default "
                        "where the hardware computes bf16 natively; the Trainer's bf16=True, on a CPU with "
                        "use_cpu); default fp32")  # fmt: skip
    parser.add_argument("--freeze", action="store_true", help="also time rose with frozen word embeddings")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    sides = args.sides.split(",") if args.sides else [*SIDES] + (["rose-frozen"] if args.freeze else []) + (
        ["trainer-top", "rose-top"] if args.top_layers else [])  # fmt: skip
    print(f"{'model':<8} {'side':<15} {'e2e s':>7} {'train s':>8} {'samples/s':>10} {'test F1':>8} {'peak MB':>8}")
    for model in args.models.split(","):
        _, description = model_folder(model)
        results = {}
        for side in sides:
            r = results[side] = measure(args, model, side)
            print(f"{model:<8} {side:<15} {r['e2e_s']:>7.1f} {r['train_s']:>8.1f} {r['samples_per_s']:>10.1f} "
                  f"{r['test_f1']:>8.3f} {r['peak_rss_mb']:>8.0f}", flush=True)  # fmt: skip
        for theirs in ("trainer", "trainer-pad128"):
            if "rose" in results and theirs in results:
                print(_ratio_line(results, "rose", theirs, "samples_per_s", TARGET, "the samples per second"))
        if "rose-top" in results and "trainer-top" in results:
            print(_ratio_line(results, "rose-top", "trainer-top", "e2e_s", 2.0, "faster per fine-tune end to end"))
            print(_ratio_line(results, "rose-top", "trainer-top", "samples_per_s", 2.0, "the samples per second"))
        print(
            f"  {model}: {description}; {args.per_label} per label, {args.epochs} epoch(s), lr {args.lr}, max length "
            f"{args.max_length}, {args.threads} threads; test: {DATA.removeprefix('human:')} (topic/en test split)"
        )
        print("  e2e s: the side's whole process (start, imports, load, train, predict the test set, save the model)")


if __name__ == "__main__":
    main()
