"""Judging selection metrics against human test data: oracle, pick, top-1 hit, regret and correlations.

A case is one task and language (or a group of its candidates: one strategy's generators, one generator's
strategies); its candidates each have a human-test macro-F1 (the ground truth) and a score under every metric
(RoSE, intrinsic metrics, the largest generator). The random pick is judged by its expected value, not one draw.

Reference: Cegin et al. 2025, RoSE (arXiv 2510.06143), section 3 of method.md: top-1 hit rate, regret in points,
Spearman and Kendall correlation (Pearson beside them).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

CASE_COLUMNS = ["task", "language", "metric", "pick", "oracle", "top1", "regret", "spearman", "kendall", "pearson",
                "n_candidates"]  # fmt: skip


def pick(scores: pd.Series, direction: int = 1) -> str | None:
    """The candidate with the best score (highest, or lowest when ``direction`` is -1); ties go to the first name."""
    s = scores.dropna()
    if s.empty:
        return None
    s = s.sort_index()
    return str((s if direction >= 0 else -s).idxmax())


def correlations(scores: pd.Series, human: pd.Series, direction: int = 1) -> dict[str, float]:
    """Spearman, Kendall (tau-b) and Pearson of ``direction * score`` with human-test F1, over shared candidates."""
    both = pd.concat([scores * (1 if direction >= 0 else -1), human], axis=1, join="inner").dropna()
    if len(both) < 3 or both.iloc[:, 0].nunique() < 2 or both.iloc[:, 1].nunique() < 2:
        return {"spearman": np.nan, "kendall": np.nan, "pearson": np.nan}
    x, y = both.iloc[:, 0].to_numpy(float), both.iloc[:, 1].to_numpy(float)
    return {
        "spearman": float(stats.spearmanr(x, y).statistic),
        "kendall": float(stats.kendalltau(x, y).statistic),
        "pearson": float(stats.pearsonr(x, y).statistic),
    }


RANDOM = "random"


def expected_random(human: pd.Series, task: str = "", language: str = "") -> dict:
    """The judgement of a uniformly random pick, in expectation over the K candidates: top-1 = the share of
    candidates that tie the oracle (1/K without ties), regret = the mean regret over candidates, correlations 0
    (NaN below three candidates, as for every metric)."""
    human = human.dropna()
    k = len(human)
    if not k:
        return {"task": task, "language": language, "metric": RANDOM, "pick": None, "oracle": None, "top1": np.nan,
                "regret": np.nan, "spearman": np.nan, "kendall": np.nan, "pearson": np.nan, "n_candidates": 0}  # fmt: skip
    best = human.max()
    zero = 0.0 if k >= 3 and human.nunique() >= 2 else np.nan
    return {"task": task, "language": language, "metric": RANDOM, "pick": None, "oracle": pick(human),
            "top1": float((best - human <= 1e-9).mean()), "regret": float((best - human).mean() * 100),
            "spearman": zero, "kendall": zero, "pearson": zero, "n_candidates": k}  # fmt: skip


def judge_case(
    scores: pd.DataFrame,
    human: pd.Series,
    directions: dict[str, int] | None = None,
    *,
    task: str = "",
    language: str = "",
) -> pd.DataFrame:
    """One row per metric (a column of ``scores``, indexed by candidate) for one case, and the random pick's
    expected row (:func:`expected_random`).

    ``human`` holds human-test macro-F1 per candidate (0-1). ``regret`` is the oracle's F1 minus the pick's, in
    points (x100); ``top1`` is 1 when the pick is the oracle (or ties with it).
    """
    directions = directions or {}
    human = human.dropna()
    oracle = pick(human)
    rows = []
    for metric in [m for m in scores.columns if m != RANDOM]:
        col = scores[metric].reindex(human.index)
        sign = directions.get(metric, 1)
        chosen = pick(col, sign)
        regret = (human[oracle] - human[chosen]) * 100 if chosen is not None else np.nan
        rows.append({
            "task": task, "language": language, "metric": metric, "pick": chosen, "oracle": oracle,
            "top1": float(regret <= 1e-9) if chosen is not None else np.nan, "regret": regret,
            **correlations(col, human, sign), "n_candidates": int(col.notna().sum()),
        })  # fmt: skip
    rows.append(expected_random(human, task, language))
    return pd.DataFrame(rows, columns=CASE_COLUMNS)


def summarise(cases: pd.DataFrame) -> pd.DataFrame:
    """Over all cases, per metric: top-1 hit rate, mean regret (points) and mean correlations; best first."""
    if cases.empty:
        return pd.DataFrame(columns=["metric", "cases", "top1_rate", "mean_regret", "spearman", "kendall", "pearson"])
    grouped = cases.groupby("metric")
    out = pd.DataFrame({
        "cases": grouped["top1"].count(), "top1_rate": grouped["top1"].mean(), "mean_regret": grouped["regret"].mean(),
        "spearman": grouped["spearman"].mean(), "kendall": grouped["kendall"].mean(),
        "pearson": grouped["pearson"].mean(),
    }).reset_index()  # fmt: skip
    return out.sort_values(["top1_rate", "mean_regret"], ascending=[False, True], kind="stable").reset_index(drop=True)
