"""Whether the candidates' differences are larger than the seed-to-seed spread, said in words.

A leaderboard ranks candidates by means over a few seeds; with three seeds of a small classifier, the top two
can trade places when the seeds change. The rule here is small and stated in the sentence itself: the gap between
the top two candidates' means counts as larger than the seed-to-seed spread when it exceeds twice the standard
error of the difference of the two means (``sqrt(s_a^2/n_a + s_b^2/n_b)``, sample standard deviations over
seeds), roughly a two-sided Welch test at the 5% level. It is applied to RoSE (each seed's classifier averaged
over the other candidates' data) and, where the runs carry it, to the human-test macro-F1.
"""

from __future__ import annotations

import math

import pandas as pd

Z = 2.0  # how many standard errors of the difference a gap must exceed


def per_seed_rose(evals: pd.DataFrame) -> pd.DataFrame:
    """``candidate, seed, value``: each seed's classifier's mean macro-F1 over the other candidates' data."""
    if not len(evals):
        return pd.DataFrame(columns=["candidate", "seed", "value"])
    off = evals[evals["train_candidate"] != evals["eval_candidate"]].dropna(subset=["macro_f1"])
    out = off.groupby(["train_candidate", "seed"])["macro_f1"].mean().reset_index()
    return out.rename(columns={"train_candidate": "candidate", "macro_f1": "value"})


def separation(per_seed: pd.DataFrame, what: str) -> str:
    """One sentence on whether the top two candidates by ``what`` differ by more than their seed spread.

    ``per_seed``: one row per (candidate, seed) with the value in ``value``; values are fractions (shown in
    points). Candidates with fewer than two seeds have no measured spread and are said to have none."""
    rows = per_seed.dropna(subset=["value"])
    if not len(rows) or rows["candidate"].nunique() < 2:
        return f"{what}: fewer than two candidates have a value, nothing to compare."
    stats = rows.groupby("candidate")["value"].agg(["mean", "std", "count"]).sort_values("mean", ascending=False)
    a, b = stats.index[0], stats.index[1]
    first, second = stats.iloc[0], stats.iloc[1]
    gap = 100 * (first["mean"] - second["mean"])
    if first["count"] < 2 or second["count"] < 2:
        return (f"{what}: {a} leads {b} by {gap:.1f} points, but with a single seed the seed-to-seed spread is "
                "unknown: run more seeds to tell.")  # fmt: skip
    se = 100 * math.sqrt(first["std"] ** 2 / first["count"] + second["std"] ** 2 / second["count"])
    spread = f"seed std {100 * first['std']:.1f} and {100 * second['std']:.1f} points over {int(first['count'])} " \
             f"and {int(second['count'])} seeds"  # fmt: skip
    if gap > Z * se:
        verdict = "larger than the seed-to-seed spread: the lead is not seed noise"
    else:
        verdict = "within the seed-to-seed spread: with these seeds the two cannot be told apart"
    return (f"{what}: {a} leads {b} by {gap:.1f} points ({spread}); the gap is {verdict} "
            f"(rule: gap > {Z:g} standard errors of the difference = {Z * se:.1f} points).")  # fmt: skip


def sentences(evals: pd.DataFrame, seeds: pd.DataFrame, candidates: list[str]) -> list[str]:
    """The sentences of a case: RoSE, and human-test macro-F1 where ``seeds`` carries ``human_f1``."""
    rose = per_seed_rose(evals)
    out = [separation(rose[rose["candidate"].isin(candidates)], "RoSE")]
    if len(seeds) and "human_f1" in seeds and seeds["human_f1"].notna().any():
        human = seeds[seeds["candidate"].isin(candidates)][["candidate", "seed", "human_f1"]]
        out.append(separation(human.rename(columns={"human_f1": "value"}), "Human-test macro-F1"))
    return out
