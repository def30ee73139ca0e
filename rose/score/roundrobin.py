"""Round-robin cross-evaluation: the matrix of classifiers x synthetic datasets, and RoSE from it.

Pure functions over a long table with one row per evaluation: ``train_candidate`` (the data the classifier
was trained on), ``eval_candidate`` (the synthetic data it was tested on), ``seed`` and ``macro_f1``.

Reference: Cegin, Pecher, Srba, Simko. RoSE: Round robin Synthetic data Evaluation (arXiv 2510.06143).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LONG_COLUMNS = ("train_candidate", "eval_candidate", "seed", "macro_f1")


def _check(long: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in LONG_COLUMNS if c not in long.columns]
    if missing:
        raise ValueError(f"the evaluation table lacks columns {missing}")
    return long.dropna(subset=["macro_f1"])


def cross_eval_matrix(long: pd.DataFrame, candidates: list[str] | None = None) -> pd.DataFrame:
    """Rows = train candidate, columns = eval candidate, each cell the mean macro-F1 over seeds (NaN if none)."""
    long = _check(long)
    names = candidates or sorted(set(long["train_candidate"]) | set(long["eval_candidate"]))
    matrix = long.groupby(["train_candidate", "eval_candidate"])["macro_f1"].mean().unstack()
    matrix = matrix.reindex(index=names, columns=names).astype(float)
    matrix.index.name, matrix.columns.name = "train_candidate", "eval_candidate"
    return matrix


def rose_scores(
    long: pd.DataFrame,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    candidates: list[str] | None = None,
) -> pd.DataFrame:
    """RoSE(i): the mean macro-F1 of candidate i's classifiers on every other candidate's data.

    Each seed's classifier is averaged over the other datasets it was evaluated on, then the seeds are averaged.
    The confidence interval is a percentile bootstrap over seeds: the seeds of each row are resampled with
    replacement (a seeded generator) and the row mean recomputed. Returns one row per candidate, best first:
    ``candidate, rose, ci_low, ci_high, n_seeds, n_evals`` (n_evals = other datasets evaluated on).

    Reference: Cegin et al. 2025, RoSE (arXiv 2510.06143), section 3 of method.md.
    """
    long = _check(long)
    off = long[long["train_candidate"] != long["eval_candidate"]]
    per_seed = off.groupby(["train_candidate", "seed"])["macro_f1"].mean()
    rng = np.random.default_rng(seed)
    alpha = (1 - confidence) / 2
    rows = []
    names = candidates or sorted(set(long["train_candidate"]))
    for name in names:
        values = per_seed[name].to_numpy() if name in per_seed.index.get_level_values(0) else np.array([])
        n_evals = off.loc[off["train_candidate"] == name, "eval_candidate"].nunique()
        if len(values) == 0:
            rows.append((name, np.nan, np.nan, np.nan, 0, n_evals))
            continue
        if len(values) > 1 and n_bootstrap > 0:
            draws = rng.choice(values, size=(n_bootstrap, len(values)), replace=True).mean(axis=1)
            low, high = np.quantile(draws, [alpha, 1 - alpha])
        else:
            low = high = values.mean()
        rows.append((name, float(values.mean()), float(low), float(high), len(values), int(n_evals)))
    out = pd.DataFrame(rows, columns=["candidate", "rose", "ci_low", "ci_high", "n_seeds", "n_evals"])
    return out.sort_values("rose", ascending=False, na_position="last", kind="stable").reset_index(drop=True)


def missing_cells(long: pd.DataFrame, seeds_by_candidate: dict[str, list], candidates: list[str]) -> list[tuple]:
    """The (train_candidate, seed, eval_candidate) evaluations that RoSE needs and the table lacks."""
    have = set(zip(long["train_candidate"], long["seed"], long["eval_candidate"], strict=True)) if len(long) else set()
    return [
        (i, s, j) for i in candidates for s in seeds_by_candidate.get(i, []) for j in candidates
        if i != j and (i, s, j) not in have
    ]  # fmt: skip
