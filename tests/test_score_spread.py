"""The leaderboard's sentence on whether candidates differ by more than the seed-to-seed spread."""

import math

import pandas as pd

from rose.score import spread


def table(values: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [(name, seed, v) for name, vs in values.items() for seed, v in enumerate(vs, 1)],
        columns=["candidate", "seed", "value"],
    )


def test_a_gap_larger_than_the_spread_is_said_so():
    text = spread.separation(table({"a": [0.80, 0.82, 0.81], "b": [0.60, 0.61, 0.62], "c": [0.1, 0.1, 0.1]}), "X")
    assert text.startswith("X: a leads b by 20.0 points")
    assert "larger than the seed-to-seed spread" in text


def test_a_gap_inside_the_spread_is_said_so():
    text = spread.separation(table({"a": [0.80, 0.60, 0.70], "b": [0.75, 0.62, 0.65]}), "X")
    assert "a leads b by 2.7 points" in text
    assert "within the seed-to-seed spread" in text


def test_the_rule_is_two_standard_errors_of_the_difference():
    # a: mean 0.7, std 0.1; b: mean 0.6, std 0.1; n=3 each: se = 100 * sqrt(2 * 0.01 / 3) = 8.16 points
    se = 100 * math.sqrt(2 * 0.01 / 3)
    text = spread.separation(table({"a": [0.6, 0.7, 0.8], "b": [0.5, 0.6, 0.7]}), "X")
    assert f"{2 * se:.1f} points" in text and "within" in text  # 10 points < 16.3
    text = spread.separation(table({"a": [0.8, 0.9, 1.0], "b": [0.5, 0.6, 0.7]}), "X")
    assert "larger than" in text  # 30 points > 16.3


def test_a_single_seed_has_no_spread_to_compare_with():
    text = spread.separation(table({"a": [0.8], "b": [0.6]}), "X")
    assert "single seed" in text and "larger than" not in text


def test_rose_per_seed_excludes_the_diagonal():
    evals = pd.DataFrame(
        [("a", "a", 1, 0.99), ("a", "b", 1, 0.5), ("a", "c", 1, 0.7), ("b", "a", 1, 0.4), ("b", "b", 1, 0.9)],
        columns=["train_candidate", "eval_candidate", "seed", "macro_f1"],
    )
    got = spread.per_seed_rose(evals).set_index("candidate")["value"]
    assert got["a"] == 0.6 and got["b"] == 0.4


def test_sentences_cover_rose_and_the_human_test_set():
    evals = pd.DataFrame(
        [(i, j, s, v) for s in (1, 2) for i, j, v in (("a", "b", 0.7 + s / 100), ("b", "a", 0.5 + s / 100))],
        columns=["train_candidate", "eval_candidate", "seed", "macro_f1"],
    )
    seeds = pd.DataFrame([("a", 1, 0.6), ("a", 2, 0.7), ("b", 1, 0.65), ("b", 2, 0.66)],
                         columns=["candidate", "seed", "human_f1"])  # fmt: skip
    rose_line, human_line = spread.sentences(evals, seeds, ["a", "b"])
    assert rose_line.startswith("RoSE: a leads b by 20.0 points") and "larger than" in rose_line
    assert human_line.startswith("Human-test macro-F1: b leads a by 0.5 points") and "within" in human_line
