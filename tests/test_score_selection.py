"""Judging metrics: oracle, pick, top-1, regret and correlations (against scipy) on constructed cases."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rose.score.selection import correlations, judge_case, pick, summarise

HUMAN = pd.Series({"a": 0.60, "b": 0.75, "c": 0.70, "d": 0.50})


def test_pick_respects_direction_and_ignores_missing():
    s = pd.Series({"a": 3.0, "b": 1.0, "c": np.nan})
    assert pick(s) == "a" and pick(s, -1) == "b"
    assert pick(pd.Series({"x": np.nan})) is None


def test_correlations_match_scipy():
    x = pd.Series({"a": 0.1, "b": 0.9, "c": 0.4, "d": 0.3})
    got = correlations(x, HUMAN)
    assert got["spearman"] == pytest.approx(stats.spearmanr(x[HUMAN.index], HUMAN).statistic)
    assert got["kendall"] == pytest.approx(stats.kendalltau(x[HUMAN.index], HUMAN).statistic)
    assert got["pearson"] == pytest.approx(stats.pearsonr(x[HUMAN.index], HUMAN).statistic)
    flipped = correlations(x, HUMAN, direction=-1)  # lower-is-better metrics are turned around
    assert flipped["spearman"] == pytest.approx(-got["spearman"])
    assert np.isnan(correlations(x[:2], HUMAN)["spearman"])  # fewer than 3 candidates


def test_top1_and_regret_on_constructed_case():
    scores = pd.DataFrame({
        "rose": {"a": 0.5, "b": 0.8, "c": 0.7, "d": 0.1},  # picks b = the oracle
        "self_bleu": {"a": 10.0, "b": 30.0, "c": 20.0, "d": 5.0},  # lower is better: picks d
        "distinct_1": {"a": 0.9, "b": 0.2, "c": 0.3, "d": 0.1},  # picks a
    })  # fmt: skip
    rows = judge_case(scores, HUMAN, {"self_bleu": -1}, task="topic", language="th").set_index("metric")
    assert (rows["oracle"] == "b").all()
    assert rows.loc["rose", "pick"] == "b" and rows.loc["rose", "top1"] == 1 and rows.loc["rose", "regret"] == 0
    assert rows.loc["self_bleu", "pick"] == "d" and rows.loc["self_bleu", "regret"] == pytest.approx(25.0)
    assert rows.loc["distinct_1", "top1"] == 0 and rows.loc["distinct_1", "regret"] == pytest.approx(15.0)
    assert rows.loc["rose", "spearman"] == pytest.approx(1.0)
    assert rows.loc["self_bleu", "spearman"] == pytest.approx(stats.spearmanr(-scores["self_bleu"], HUMAN).statistic)


def test_summary_over_cases():
    one = judge_case(pd.DataFrame({"m": HUMAN}), HUMAN, task="t", language="x")  # perfect metric
    two = judge_case(pd.DataFrame({"m": -HUMAN}), HUMAN, task="t", language="y")  # worst metric
    s = summarise(pd.concat([one, two])).set_index("metric")
    assert s.loc["m", "cases"] == 2 and s.loc["m", "top1_rate"] == 0.5
    assert s.loc["m", "mean_regret"] == pytest.approx((0 + 25) / 2)
    assert s.loc["m", "spearman"] == pytest.approx(0.0)
