"""Does RoSE pick the best generator? RoSE against the intrinsic metrics, the largest model and a random pick.

    python benchmarks/validity.py [--config benchmarks/validity.yaml] [--keep DIR] [--smoke]

The study (``benchmarks/validity.yaml``): English topic (SIB-200), intent (MASSIVE-10) and sentiment; the two offline
LLMs under three strategies each, plus the Llama-3-70B data of ``../shared/data/synthetic/llama3-70b/`` imported as
a candidate (where this rose can import datasets into a study: ``rose data import``); every candidate cut to the
same examples per label (generation and training both stop at ``per_label``); three seeds; the human test sets as
the oracle. One study per task is written from the config (the imported file differs per task) and run with
``rose pipeline`` in a scratch folder holding its own tracking store; each study trains the human-data baseline too
(the same classifier on the same number of human examples per label, same seeds).

It prints and writes (``candidates.csv``, ``selection.csv``, ``validity.md`` in the folder), per case and pooled
over the cases: each candidate's human-test macro-F1 and its gap to the human baseline (points); for RoSE, every
intrinsic metric, the largest generator and the random pick (its expected value): top-1 hit, regret (points),
Spearman and Kendall with human-test F1. And the wall time, split into what dominates it.

``--smoke`` runs the same code with the fake backend (two fake generators, two strategies), the tiny test encoder and
one epoch: it checks the script, not RoSE (a few minutes per task on a busy 2-core machine; ``--tasks`` picks some).
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
LANGUAGE = "en"
IMPORTED = {"name": "llama3-70b", "generator": "meta-llama/Meta-Llama-3-70B-Instruct", "label_column": "intent"}
IMPORTED_FILE = "synthetic/llama3-70b/{task}-en.csv"
JUDGED = ["top1", "regret", "spearman", "kendall"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "benchmarks" / "validity.yaml"))
    parser.add_argument("--keep", default="", help="run in this folder and keep it (default: a temporary one)")
    parser.add_argument("--tasks", default="", help="only these tasks, comma-separated (default: the config's)")
    parser.add_argument("--smoke", action="store_true", help="fake backend, tiny encoder, one epoch: checks the script")
    args = parser.parse_args()
    started, started_ms = time.perf_counter(), int(time.time() * 1000)
    raw = yaml.safe_load(Path(args.config).read_text(encoding="utf-8"))
    source = (ROOT / raw.get("source", "../shared/data")).resolve()
    if not source.exists():
        print(f"error: {source} is absent: the validity benchmark needs the human data (../shared/data)")
        return 2
    if args.smoke:
        raw = smoke_settings(raw)
    tasks = [t for t in args.tasks.split(",") if t] or list(raw["tasks"])
    # beside the checkout, so relative paths in a study resolve as they do from the repository root
    work = Path(args.keep or tempfile.mkdtemp(prefix="rose-validity-", dir=ROOT.parent)).resolve()
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "MLproject", work / "MLproject")
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # the scratch folder's own store
    os.chdir(work)
    timings: dict[str, float] = {}
    for task in tasks:
        study = write_study(raw, task, source, work)
        timings[f"pipeline {task}"] = run_study(study)
    candidates, selection, baselines = tables(raw["experiment"], tasks)
    report = markdown(candidates, selection, baselines, tasks)
    (work / "validity.md").write_text(report, encoding="utf-8")
    candidates.to_csv(work / "candidates.csv", index=False)
    selection.to_csv(work / "selection.csv", index=False)
    print(report)
    print(wall_time(raw["experiment"], timings, time.perf_counter() - started, started_ms))
    print(f"files: {work}/validity.md, candidates.csv, selection.csv; tracking store {work}/mlflow.db")
    return 0


def smoke_settings(raw: dict) -> dict:
    """The config with the fake backend, the tiny test encoder, few examples and one epoch."""
    sys.path.insert(0, str(ROOT))
    from tests.tiny import make_tiny_classifier

    raw = copy.deepcopy(raw)
    encoder = make_tiny_classifier(Path(tempfile.gettempdir()) / "rose-validity-tiny")
    raw["experiment"] = "rose-validity-smoke"
    raw["generators"] = ["fake-small", "fake-large"]
    raw["strategies"] = ["zero_shot", "target_demos"]
    raw["generate"] = {"backend": "fake", "per_label": 4}
    raw["train"] = {"classifier": str(encoder), "seeds": [1, 2, 3], "per_label": 4, "max_epochs": 1,
                    "learning_rate": 1e-3, "batch_size": 8}  # fmt: skip
    raw["score"] = {"reference_lm": "", "embedding_model": "", "tokenizer": "", "bootstrap": 50}
    return raw


def imports_supported() -> bool:
    """Whether this rose lists datasets made elsewhere as study candidates (``{data: file, name: ...}``)."""
    from rose.pipeline import study

    return hasattr(study, "IMPORT_KEYS")


def write_study(raw: dict, task: str, source: Path, work: Path) -> Path:
    """The study of one task: the config's generated candidates, plus the imported Llama-3-70B data."""
    study = {k: v for k, v in copy.deepcopy(raw).items() if k not in ("generators", "strategies")}
    study.update(tasks=[task], languages=[LANGUAGE], source=str(source))
    candidates = [{"generator": g, "strategy": s} for g in raw["generators"] for s in raw["strategies"]]
    imported = source / IMPORTED_FILE.format(task=task)
    if imported.exists() and imports_supported():
        candidates.append({**IMPORTED, "data": str(imported)})
    elif imported.exists():
        print(f"note: this rose cannot import datasets into a study; {imported.name} is left out")
    study["candidates"] = candidates
    path = work / f"study_{task}.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False), encoding="utf-8")
    return path


def run_study(path: Path) -> float:
    from rose.pipeline.run import run_pipeline

    result = run_pipeline(path)
    print(f"{path.name}: {result.ran} units run, {result.skipped} found done, {result.wall_s:.0f} s")
    return result.wall_s


def tables(experiment: str, tasks: list[str]) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
    """(candidates: human-test F1 and gap to the human baseline per case and candidate; selection: each metric
    judged per case and pooled over the cases; the human baseline's human-test F1 per case)."""
    from rose.score import selection
    from rose.score.tables import build_tables

    cases = build_tables(experiment, tasks, [LANGUAGE])
    rows, baselines = [], {}
    for c in cases:
        board = c.leaderboard.set_index("candidate")
        gaps = board["gap_to_human"] if "gap_to_human" in board else pd.Series(dtype=float)
        if gaps.notna().any():  # the leaderboard's gap is the candidate's F1 minus the baseline's
            name = gaps.dropna().index[0]
            baselines[c.task] = float(board.loc[name, "human_f1"] - gaps[name])
        else:
            print(f"note: {c.task}: no human-data baseline in the store; gaps are left empty")
        for name, f1 in c.human.items():
            rows.append({"case": c.task, "candidate": name, "generator": board["generator"].get(name),
                         "strategy": board["strategy"].get(name), "rose": board["rose"].get(name), "human_f1": f1,
                         "gap_to_human": gaps.get(name, float("nan")) * 100})  # fmt: skip
    candidates = pd.DataFrame(rows)
    if len(candidates):
        pooled = candidates.groupby("candidate", as_index=False).agg(
            generator=("generator", "first"), strategy=("strategy", "first"), rose=("rose", "mean"),
            human_f1=("human_f1", "mean"), gap_to_human=("gap_to_human", "mean"), cases=("case", "count"))  # fmt: skip
        pooled = pooled[pooled["cases"] == len(cases)].drop(columns="cases").assign(case="pooled")
        candidates = pd.concat([candidates, pooled], ignore_index=True)
    judged = pd.concat([c.judged for c in cases], ignore_index=True) if cases else pd.DataFrame()
    per_case = judged.rename(columns={"task": "case"})[["case", "metric", *JUDGED, "pick", "oracle"]]
    summary = selection.summarise(judged).rename(columns={"top1_rate": "top1", "mean_regret": "regret"})
    summary = summary.assign(case="pooled")[["case", "metric", *JUDGED, "cases"]]
    return candidates, pd.concat([per_case, summary], ignore_index=True), baselines


def markdown(candidates: pd.DataFrame, selection: pd.DataFrame, baselines: dict[str, float], tasks: list[str]) -> str:
    from rose.score.report import to_markdown

    base = pd.DataFrame({"case": list(baselines), "human_baseline_f1": list(baselines.values())})
    order = ["rose", "random"]
    rank = selection["metric"].map(lambda m: order.index(m) if m in order else len(order))
    pooled = selection[selection["case"] == "pooled"].assign(_r=rank).sort_values(["_r", "metric"]).drop(columns="_r")
    return "\n".join([
        f"# RoSE validity (English {', '.join(tasks)})\n",
        "## Human-data baseline (same examples per label, same seeds)\n", to_markdown(base),
        "## Candidates: human-test macro-F1 and gap to the human baseline (points)\n",
        to_markdown(candidates[["case", "candidate", "generator", "strategy", "rose", "human_f1", "gap_to_human"]]),
        "## Selection metrics pooled over the cases (top-1 rate, mean regret in points, mean correlations)\n",
        to_markdown(pooled.drop(columns=["pick", "oracle"], errors="ignore")),
        "## Selection metrics per case\n",
        to_markdown(selection[selection["case"] != "pooled"].drop(columns="cases", errors="ignore")),
    ])  # fmt: skip


def wall_time(experiment: str, timings: dict[str, float], total: float, since_ms: int) -> str:
    """The wall time, and what dominates it: the seconds each stage took (generation, training, cross-evaluation
    cells, scoring), from the ``time/<stage>_s`` metrics of the pipeline runs this call started. (Summing the
    durations of cell runs would count overlapping runs twice: the cells of one classifier are claimed together.)"""
    from rose import tracking

    pipelines = [r for r in tracking.search_runs(experiment, stage="pipeline") if r.info.start_time >= since_ms]
    names = {"generate": "generation", "train": "training", "evaluate": "cross-evaluation cells", "score": "scoring"}
    parts = {label: sum(r.data.metrics.get(f"time/{stage}_s", 0.0) for r in pipelines)
             for stage, label in names.items()}  # fmt: skip
    parts["other (planning, starting workers, the tables)"] = max(0.0, total - sum(parts.values()))
    lines = [f"wall time: {total / 60:.1f} min"]
    lines += [f"  {name}: {s / 60:.1f} min ({s / total:.0%})" for name, s in sorted(parts.items(), key=lambda x: -x[1])]
    lines += [f"  [{name}: {s / 60:.1f} min]" for name, s in timings.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
