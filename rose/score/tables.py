"""From tracked runs to the tables of one case (task and language): matrix, RoSE, metric scores, judgement.

:func:`build_case` is pure over a :class:`~rose.score.collect.Tracked`; :func:`build_tables` reads the tracking
store (read-only: it fills nothing and logs nothing), which is what the analysis notebook calls.

Reference: Cegin et al. 2025, RoSE (arXiv 2510.06143).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from rose.score import intrinsic, roundrobin, selection
from rose.score.collect import Tracked

GENERATE_COLUMNS = {"task", "language", "candidate", "run_id", "generator", "strategy", "start_time",
                    "revision_acceptance_logged"}  # fmt: skip


@dataclass
class CaseTables:
    """Everything score reports for one task and language."""

    task: str
    language: str
    candidates: list[str]
    evals: pd.DataFrame  # long table of the cross-evaluation
    matrix: pd.DataFrame  # train candidate x eval candidate, mean macro-F1 over seeds
    rose: pd.DataFrame  # candidate, rose, ci_low, ci_high, n_seeds, n_evals (best first)
    scores: pd.DataFrame  # candidate x metric (rose, intrinsic metrics, baselines)
    human: pd.Series  # human-test macro-F1 per candidate (mean over seeds); empty without human test data
    judged: pd.DataFrame  # selection.judge_case rows; empty without human test data
    leaderboard: pd.DataFrame
    champion: str
    generate: pd.DataFrame = field(default_factory=pd.DataFrame)
    seeds: pd.DataFrame = field(default_factory=pd.DataFrame)


def directions() -> dict[str, int]:
    return {"rose": 1, "random": 1, **intrinsic.DIRECTION}


def build_case(
    tracked: Tracked, task: str, language: str, candidates: list[str], *, bootstrap: int = 1000, seed: int = 0
) -> CaseTables:
    """The tables of one case from its tracked runs (``tracked`` already restricted to the case)."""
    evals = tracked.evals[
        tracked.evals["train_candidate"].isin(candidates) & tracked.evals["eval_candidate"].isin(candidates)
    ]
    matrix = roundrobin.cross_eval_matrix(evals, candidates)
    rose = roundrobin.rose_scores(evals, n_bootstrap=bootstrap, seed=seed, candidates=candidates)
    gen = tracked.generate.set_index("candidate").reindex(candidates)
    metric_cols = [c for c in gen.columns if c not in GENERATE_COLUMNS]
    scores = pd.concat([rose.set_index("candidate")["rose"], gen[metric_cols].astype(float)], axis=1)
    scores["random"] = pd.Series(intrinsic.random_baseline(candidates, seed))
    scores.index.name = "candidate"
    seeds = tracked.seeds[tracked.seeds["candidate"].isin(candidates)]
    human = seeds.groupby("candidate")["human_f1"].mean().dropna() if len(seeds) else pd.Series(dtype=float)
    judged = (
        selection.judge_case(scores, human, directions(), task=task, language=language)
        if len(human)
        else (pd.DataFrame(columns=selection.CASE_COLUMNS))
    )
    board = rose.merge(gen[["generator", "strategy"]], left_on="candidate", right_index=True, how="left")
    if len(human):
        board["human_f1"] = board["candidate"].map(human)
        if len(tracked.baseline):  # the human-data baseline: same settings, same examples per label
            board["gap_to_human"] = board["human_f1"] - float(tracked.baseline.mean())
    champion = str(rose["candidate"].iloc[0]) if rose["rose"].notna().any() else ""
    return CaseTables(
        task, language, candidates, evals, matrix, rose, scores, human, judged, board, champion, tracked.generate, seeds
    )


def build_tables(
    experiment: str,
    tasks: list[str],
    languages: list[str],
    candidates: list[str] = (),
    *,
    bootstrap: int = 1000,
    seed: int = 0,
) -> list[CaseTables]:
    """Rebuild every case's tables from the tracking store (three searches; nothing is filled or logged)."""
    from rose.score.collect import collect, select

    store = collect(experiment, tasks, languages, candidates)
    out = []
    for task, language in store.cases():
        chosen = select(store.case(task, language), task, language, experiment)
        out.append(build_case(chosen.tracked, task, language, chosen.ready, bootstrap=bootstrap, seed=seed))
    return out


def summary(cases: list[CaseTables]) -> pd.DataFrame:
    """Every metric judged over all cases with human test data (top-1 rate, regret, correlations)."""
    judged = [c.judged for c in cases if len(c.judged)]
    return selection.summarise(pd.concat(judged, ignore_index=True) if judged else pd.DataFrame())
