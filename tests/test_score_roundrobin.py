"""RoSE on hand-built cross-evaluation tables: own data excluded, seeds averaged, bootstrap interval."""

import numpy as np
import pandas as pd
import pytest

from rose.score.roundrobin import cross_eval_matrix, missing_cells, rose_scores


def long_table(cells):
    return pd.DataFrame(cells, columns=["train_candidate", "eval_candidate", "seed", "macro_f1"])


@pytest.fixture
def three():
    # a's classifiers: seed 1 scores .8 on b, .6 on c; seed 2 scores .6 on b, .4 on c; .99 on its own data
    cells = [
        ("a", "a", 1, 0.99), ("a", "b", 1, 0.8), ("a", "c", 1, 0.6),
        ("a", "a", 2, 0.99), ("a", "b", 2, 0.6), ("a", "c", 2, 0.4),
        ("b", "a", 1, 0.5), ("b", "c", 1, 0.7), ("b", "b", 1, 1.0),
        ("c", "a", 1, 0.9), ("c", "b", 1, 0.9), ("c", "c", 1, 0.1),
    ]  # fmt: skip
    return long_table(cells)


def test_matrix_averages_seeds(three):
    m = cross_eval_matrix(three)
    assert list(m.index) == ["a", "b", "c"] and list(m.columns) == ["a", "b", "c"]
    assert m.loc["a", "b"] == pytest.approx(0.7)
    assert m.loc["a", "c"] == pytest.approx(0.5)
    assert m.loc["a", "a"] == pytest.approx(0.99)
    assert m.loc["c", "b"] == pytest.approx(0.9)


def test_rose_excludes_own_data_and_averages_seeds(three):
    r = rose_scores(three, n_bootstrap=0).set_index("candidate")
    assert r.loc["a", "rose"] == pytest.approx((0.7 + 0.5) / 2)  # seed means .7 and .5, own .99 ignored
    assert r.loc["b", "rose"] == pytest.approx((0.5 + 0.7) / 2)
    assert r.loc["c", "rose"] == pytest.approx(0.9)  # its own .1 does not count
    assert list(rose_scores(three, n_bootstrap=0)["candidate"]) == ["c", "a", "b"]  # best first, ties stable
    assert r.loc["a", "n_seeds"] == 2 and r.loc["a", "n_evals"] == 2


def test_bootstrap_interval_over_seeds(three):
    r = rose_scores(three, n_bootstrap=2000, seed=3).set_index("candidate")
    assert r.loc["a", "ci_low"] >= 0.5 - 1e-12 and r.loc["a", "ci_high"] <= 0.7 + 1e-12
    assert r.loc["a", "ci_low"] < r.loc["a", "rose"] < r.loc["a", "ci_high"]
    assert r.loc["c", "ci_low"] == r.loc["c", "ci_high"] == pytest.approx(0.9)  # one seed: no spread
    again = rose_scores(three, n_bootstrap=2000, seed=3).set_index("candidate")
    assert again.loc["a", "ci_low"] == r.loc["a", "ci_low"]  # same seed, same interval
    # the interval matches a direct percentile bootstrap of the two seed means
    draws = np.random.default_rng(3).choice([0.7, 0.5], size=(2000, 2)).mean(axis=1)
    assert r.loc["a", "ci_low"] == pytest.approx(np.quantile(draws, 0.025))


def test_missing_cells_and_candidate_without_runs(three):
    partial = three[~((three["train_candidate"] == "a") & (three["eval_candidate"] == "c") & (three["seed"] == 2))]
    assert missing_cells(partial, {"a": [1, 2], "b": [1], "c": [1]}, ["a", "b", "c"]) == [("a", 2, "c")]
    r = rose_scores(partial, n_bootstrap=0, candidates=["a", "b", "c", "d"]).set_index("candidate")
    assert r.loc["a", "rose"] == pytest.approx((0.7 + 0.6) / 2)
    assert np.isnan(r.loc["d", "rose"]) and r.loc["d", "n_seeds"] == 0
    assert missing_cells(three.iloc[0:0], {"a": [1]}, ["a", "b"]) == [("a", 1, "b")]
