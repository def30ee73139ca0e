"""Cross-evaluation cells before and after the shared trunk: 4 classifiers x 5 datasets, equal cell values.

Set-up (not timed): four classifiers of the demo's set-up (``multilingual-e5-small``, top four layers trained at
3e-4, max length 64) trained with ``rose train`` on 6, 8, 10 and 12 human examples per label (SIB-200 English, or
rose's bundled sentences without ../shared/data), ``--seeds`` each; five datasets: the human test split and four
generate runs holding slices of the human dev split. Then every classifier's cells on the five datasets, computed
as the pipeline's evaluate stage does (one worker, each classifier's seeds over all its datasets in one pass):

- ``before``: each seed model loaded through ``mlflow.pyfunc`` (the base model read from disk, the delta applied)
  and every text run through all twelve layers: rose's cells before the trunk cache;
- ``after``: the base loaded once for the worker (rose.train.pool), each seed's top layers and head applied to a
  copy of those only, the frozen eight layers' output computed once per dataset (rose.train.trunk, cold cache).

Prints the seconds of each, the ratio, and the largest difference of any cell's per-seed macro-F1 (0 expected).

    python benchmarks/cells.py [--seeds 1,2,3] [--epochs 2] [--classifier multilingual-e5-small]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
SOURCE = SHARED if SHARED.exists() else ROOT / "rose" / "resources" / "topic"
CAPS = (6, 8, 10, 12)
SLICES = 4


def _datasets(experiment: str, folder: Path) -> list[str]:
    """The human test split and four generate runs holding slices of the human dev split."""
    import mlflow

    from rose import tracking
    from rose.generated_data import write_jsonl
    from rose.human_data import load_split

    dev = load_split("topic", "en", "dev", str(SOURCE))
    exp = tracking.setup(experiment)
    client = mlflow.MlflowClient()
    refs = [f"human:{SOURCE}"]
    for k in range(SLICES):
        name = f"slice-{k}__dev"
        rows = [{"text": t, "label": lab, "candidate": name} for i, (t, lab) in enumerate(zip(dev.texts, dev.labels, strict=True))
                if i % SLICES == k]  # fmt: skip
        run = client.create_run(exp, tags=tracking.tags("generate", "topic", "en", candidate=name, generator="slice",
                                                        strategy="dev"), run_name=name).info.run_id  # fmt: skip
        write_jsonl(rows, folder / name / "data.jsonl")
        client.log_artifacts(run, str(folder / name), "dataset")
        client.set_terminated(run)
        refs.append(run)
    return refs


def _cells(experiment: str, train_ids: list[str], refs: list[str], trunk: bool) -> tuple[float, dict]:
    from rose.train import pool
    from rose.train.cells import evaluate_cells

    start = time.perf_counter()
    out = {}
    for train_id in train_ids:
        for ref, run_id in zip(refs, evaluate_cells(experiment, train_id, refs, trunk=trunk), strict=True):
            out[train_id, ref] = run_id
    pool.pool().clear()
    return time.perf_counter() - start, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classifier", default="multilingual-e5-small")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--top-layers", type=int, default=4)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rose-cells-bench-"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    os.environ["ROSE_TRUNK_CACHE"] = str(work / "trunk")  # a cold trunk cache
    os.chdir(work)
    import mlflow

    from rose.train.cells import seed_scores
    from rose.train.config import TrainConfig
    from rose.train.run import train

    seeds = [int(s) for s in args.seeds.split(",")]
    t0 = time.perf_counter()
    train_ids = [train(TrainConfig(task="topic", language="en", data=f"human:{SOURCE}", classifier=args.classifier,
                                   seeds=seeds, per_label=cap, max_epochs=args.epochs, patience=args.epochs,
                                   max_length=64, batch_size=8, learning_rate=3e-4, freeze_embeddings=True,
                                   train_top_layers=args.top_layers, experiment="cells-train")).parent_run_id
                 for cap in CAPS]  # fmt: skip
    refs = _datasets("cells-train", work / "datasets")
    setup = time.perf_counter() - t0
    from rose.train import trunk

    trunk.cache().clear()
    before_s, before = _cells("cells-before", train_ids, refs, trunk=False)
    after_s, after = _cells("cells-after", train_ids, refs, trunk=True)
    client = mlflow.MlflowClient()
    worst, n = 0.0, 0
    for key, run_id in before.items():
        a = seed_scores(client.get_run(run_id).data.metrics)
        b = seed_scores(client.get_run(after[key]).data.metrics)
        assert a.keys() == b.keys(), key
        for seed in a:
            worst = max(worst, abs(a[seed]["macro_f1"] - b[seed]["macro_f1"]))
            n += 1
    cells = len(before)
    print(f"{len(train_ids)} classifiers x {len(refs)} datasets = {cells} cells, {len(seeds)} seed(s) each "
          f"({args.classifier}, top {args.top_layers} layers trained; set-up {setup:.0f} s, not timed)")
    print(f"{'':<8} {'seconds':>8} {'s/cell':>7}")
    print(f"{'before':<8} {before_s:>8.1f} {before_s / cells:>7.2f}   (pyfunc load per seed, all layers per text)")
    print(f"{'after':<8} {after_s:>8.1f} {after_s / cells:>7.2f}   (base once per worker, trunk once per dataset)")
    print(f"after is {before_s / after_s:.2f}x faster; largest difference of a cell's per-seed macro-F1 over "
          f"{n} values: {worst:.2e} ({'equal' if worst <= 1e-6 else 'NOT EQUAL'})")
    print(json.dumps({"before_s": before_s, "after_s": after_s, "cells": cells, "max_diff": worst}))
    return 0 if worst <= 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
