"""Judging metrics: oracle, pick, top-1, regret and correlations (against scipy) on constructed cases."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rose.score.selection import correlations, expected_random, judge_case, pick, summarise

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


def test_random_pick_is_judged_by_its_expected_value():
    got = expected_random(HUMAN)
    assert got["top1"] == pytest.approx(1 / 4)  # one oracle among K = 4
    oracle = HUMAN.max()
    assert got["regret"] == pytest.approx(sum((oracle - v) * 100 for v in HUMAN) / 4)  # (15 + 0 + 5 + 25) / 4
    assert got["regret"] == pytest.approx(11.25)
    assert got["spearman"] == got["kendall"] == got["pearson"] == 0.0
    ties = expected_random(pd.Series({"a": 0.7, "b": 0.7, "c": 0.5}))  # two candidates tie the oracle
    assert ties["top1"] == pytest.approx(2 / 3) and ties["regret"] == pytest.approx(20 / 3)
    assert np.isnan(expected_random(HUMAN[:2])["spearman"])  # fewer than 3 candidates: no correlation
    # judge_case carries it as the "random" row (never a seeded draw), and summarise averages it over cases
    rows = judge_case(pd.DataFrame({"m": HUMAN}), HUMAN, task="t", language="x").set_index("metric")
    assert rows.loc["random", "top1"] == pytest.approx(0.25) and rows.loc["random", "regret"] == pytest.approx(11.25)
    other = judge_case(pd.DataFrame({"m": HUMAN[:3]}), HUMAN[:3], task="t", language="y")
    s = summarise(pd.concat([rows.reset_index(), other])).set_index("metric")
    assert s.loc["random", "cases"] == 2 and s.loc["random", "top1_rate"] == pytest.approx((1 / 4 + 1 / 3) / 2)
