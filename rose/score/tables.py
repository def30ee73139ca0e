"""From tracked runs to the tables of one case (task and language): matrix, RoSE, metric scores, judgement.

:func:`build_case` is pure over a :class:`~rose.score.collect.Tracked`; :func:`build_tables` reads the tracking
store (read-only: it fills nothing and logs nothing), which is what the analysis notebook calls.

Reference: Cegin et al. 2025, RoSE (arXiv 2510.06143).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from rose.errors import RoseError
from rose.naming import slug
from rose.score import intrinsic, roundrobin, selection, selectors
from rose.score.collect import Tracked, collect, select

DIMENSIONS = ("strategy", "generator")

GENERATE_COLUMNS = {"task", "language", "candidate", "run_id", "generator", "strategy", "start_time", "task_digest",
                    "revision_acceptance_logged", "intrinsic_tools"}  # fmt: skip


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
    dimension: str = ""  # "" for the whole pool; "strategy" or "generator" for a group of its candidates
    group: str = ""  # the strategy or generator the group's candidates share
    label_free: object = None  # rose.score.label_free.LabelFree of the case (the pool's tables only)

    @property
    def title(self) -> str:
        """``topic/en`` for the pool, ``topic/en strategy target_demos`` for a group."""
        return f"{self.task}/{self.language}" + (f" {self.dimension} {self.group}" if self.dimension else "")

    @property
    def key(self) -> str:
        """Metric-key path of the group: ``""`` for the pool, else ``<dimension>/<group>``."""
        return f"{self.dimension}/{slug(self.group)}" if self.dimension else ""


def directions() -> dict[str, int]:
    return {"rose": 1, **intrinsic.DIRECTION, **selectors.DIRECTION}


def build_case(
    tracked: Tracked,
    task: str,
    language: str,
    candidates: list[str],
    *,
    bootstrap: int = 1000,
    seed: int = 0,
    selectors: Callable[[list[str]], pd.DataFrame] | None = None,
) -> CaseTables:
    """The tables of one case from its tracked runs (``tracked`` already restricted to the case). ``selectors``
    gives the label-free selectors' values (candidate x selector) of a list of candidates
    (:meth:`rose.score.label_free.LabelFree.within`): leaderboard columns and metrics judged like every other."""
    evals = tracked.evals[
        tracked.evals["train_candidate"].isin(candidates) & tracked.evals["eval_candidate"].isin(candidates)
    ]
    matrix = roundrobin.cross_eval_matrix(evals, candidates)
    rose = roundrobin.rose_scores(evals, n_bootstrap=bootstrap, seed=seed, candidates=candidates)
    gen = tracked.generate.set_index("candidate").reindex(candidates)
    metric_cols = [c for c in gen.columns if c not in GENERATE_COLUMNS]
    free = selectors(candidates).reindex(candidates).astype(float) if selectors else pd.DataFrame(index=candidates)
    scores = pd.concat([rose.set_index("candidate")["rose"], gen[metric_cols].astype(float), free], axis=1)
    scores.index.name = "candidate"  # the random pick is judged by its expected value (selection.expected_random)
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
    for name in free.columns:
        board[name] = board["candidate"].map(free[name])
    champion = str(rose["candidate"].iloc[0]) if rose["rose"].notna().any() else ""
    return CaseTables(
        task, language, candidates, evals, matrix, rose, scores, human, judged, board, champion, tracked.generate, seeds
    )


def groups(generate: pd.DataFrame, candidates: list[str], dimension: str) -> dict[str, list[str]]:
    """The candidates sharing a ``strategy`` or a ``generator`` (groups of two or more), by that shared value."""
    if dimension not in DIMENSIONS:
        raise RoseError(f"unknown grouping {dimension!r}: use one of {', '.join(DIMENSIONS)}")
    by = generate.drop_duplicates("candidate").set_index("candidate")[dimension].reindex(candidates)
    out: dict[str, list[str]] = {}
    for name, value in by.items():
        if isinstance(value, str) and value:
            out.setdefault(value, []).append(name)
    return {value: names for value, names in sorted(out.items()) if len(names) >= 2}


def dimensions(group_by: str) -> list[str]:
    """The grouping dimensions of a ``group_by`` setting: none, strategy, generator or both."""
    choices = {"none": [], "strategy": ["strategy"], "generator": ["generator"], "both": list(DIMENSIONS)}
    if group_by not in choices:
        raise RoseError(f"unknown group_by {group_by!r}: use none, strategy, generator or both")
    return choices[group_by]


def build_groups(
    tracked: Tracked, task: str, language: str, candidates: list[str], group_by: str = "none", **kw
) -> list[CaseTables]:
    """The tables of each group of a case's candidates: within each strategy across generators (the RoSE paper's
    comparison) and/or within each generator across strategies (the strategies paper's); RoSE's round robin
    runs over the group's candidates only."""
    out = []
    for dimension in dimensions(group_by):
        for value, names in groups(tracked.generate, candidates, dimension).items():
            tables = build_case(tracked, task, language, names, **kw)
            tables.dimension, tables.group = dimension, value
            out.append(tables)
    return out


def build_tables(
    experiment: str,
    tasks: list[str],
    languages: list[str],
    candidates: list[str] = (),
    *,
    bootstrap: int = 1000,
    seed: int = 0,
    group_by: str = "none",
) -> list[CaseTables]:
    """Rebuild every case's tables (and its groups', see :func:`build_groups`) from the tracking store (three
    searches; nothing is filled or logged)."""

    store = collect(experiment, tasks, languages, candidates)
    out = []
    for task, language in store.cases():
        chosen = select(store.case(task, language), task, language, experiment)
        case, ready = chosen.tracked, chosen.ready
        out.append(build_case(case, task, language, ready, bootstrap=bootstrap, seed=seed))
        out.extend(build_groups(case, task, language, ready, group_by, bootstrap=bootstrap, seed=seed))
    return out


def summary(cases: list[CaseTables], dimension: str = "") -> pd.DataFrame:
    """Every metric judged over all cases with human test data (top-1 rate, regret, correlations): over the whole
    pools (``dimension=""``), or over every group of one dimension (``strategy``, ``generator``)."""
    judged = [c.judged for c in cases if len(c.judged) and c.dimension == dimension]
    return selection.summarise(pd.concat(judged, ignore_index=True) if judged else pd.DataFrame())
