"""Scoring by groups on a hand-built matrix: RoSE and the selection checks within each strategy (across generators)
and within each generator (across strategies), besides the whole pool; the score run's metric keys."""

import numpy as np
import pandas as pd
import pytest

from rose.errors import RoseError
from rose.score.collect import Tracked
from rose.score.run import metric_values
from rose.score.tables import build_case, build_groups, dimensions, groups, summary

NAMES = ["g1__s1", "g1__s2", "g2__s1", "g2__s2"]
# cross-evaluation macro-F1, trained on (row) and tested on (column); the diagonal is never used by RoSE
M = pd.DataFrame(
    [[0.99, 0.60, 0.80, 0.50],
     [0.50, 0.99, 0.70, 0.60],
     [0.30, 0.90, 0.99, 0.65],
     [0.55, 0.45, 0.20, 0.99]], index=NAMES, columns=NAMES)  # fmt: skip
HUMAN = {"g1__s1": 0.62, "g1__s2": 0.55, "g2__s1": 0.70, "g2__s2": 0.40}


def tracked() -> Tracked:
    evals = pd.DataFrame([
        {"task": "topic", "language": "cy", "train_candidate": i, "eval_candidate": j, "seed": s, "run_id": f"{i}{s}",
         "macro_f1": M.loc[i, j] + 0.02 * (s - 1)} for i in NAMES for j in NAMES for s in (1, 2)
    ])  # fmt: skip
    generate = pd.DataFrame({"task": "topic", "language": "cy", "candidate": NAMES, "run_id": NAMES,
                             "generator": [n.split("__")[0] for n in NAMES],
                             "strategy": [n.split("__")[1] for n in NAMES], "start_time": 0,
                             "distinct_1": [0.1, 0.4, 0.2, 0.3]})  # fmt: skip
    seeds = pd.DataFrame([{"task": "topic", "language": "cy", "candidate": n, "seed": s, "run_id": f"{n}{s}",
                           "dev_f1": 0.9, "human_f1": HUMAN[n]} for n in NAMES for s in (1, 2)])  # fmt: skip
    return Tracked(generate, seeds, evals)


def rose_by_hand(names: list[str]) -> dict[str, float]:
    """Mean over the other candidates of the group, averaged over the two seeds (+0.00 and +0.02)."""
    return {i: np.mean([M.loc[i, j] for j in names if j != i]) + 0.01 for i in names}


def test_groups_of_candidates():
    t = tracked()
    assert groups(t.generate, NAMES, "strategy") == {"s1": ["g1__s1", "g2__s1"], "s2": ["g1__s2", "g2__s2"]}
    assert groups(t.generate, NAMES, "generator") == {"g1": ["g1__s1", "g1__s2"], "g2": ["g2__s1", "g2__s2"]}
    assert groups(t.generate, NAMES[:3], "strategy") == {"s1": ["g1__s1", "g2__s1"]}  # a group of one is none
    assert dimensions("both") == ["strategy", "generator"] and dimensions("none") == []
    with pytest.raises(RoseError, match="group_by"):
        dimensions("language")


def test_rose_and_selection_within_each_group():
    t = tracked()
    pool = build_case(t, "topic", "cy", NAMES, bootstrap=20)
    cases = [pool, *build_groups(t, "topic", "cy", NAMES, "both", bootstrap=20)]
    assert [(c.dimension, c.group) for c in cases] == [
        ("", ""), ("strategy", "s1"), ("strategy", "s2"), ("generator", "g1"), ("generator", "g2")]  # fmt: skip
    for c in cases:
        expected = rose_by_hand(c.candidates)
        got = c.rose.set_index("candidate")["rose"]
        assert sorted(got.index) == sorted(c.candidates)
        for name, value in expected.items():
            assert got[name] == pytest.approx(value), (c.title, name)
    by = {c.group or "pool": c for c in cases}
    # the pool: RoSE g1__s1 = (0.60 + 0.80 + 0.50) / 3 + 0.01, the best; the oracle is g2__s1 (0.70)
    assert by["pool"].champion == "g1__s1"
    judged = by["pool"].judged.set_index("metric")
    assert judged.loc["rose", "oracle"] == "g2__s1" and judged.loc["rose", "regret"] == pytest.approx(8.0)
    # within strategy s1 (g1 vs g2): RoSE g1__s1 = 0.80, g2__s1 = 0.30, so g1__s1 is picked; the oracle is g2__s1
    s1 = by["s1"].judged.set_index("metric")
    assert by["s1"].champion == "g1__s1" and s1.loc["rose", "top1"] == 0
    assert s1.loc["rose", "regret"] == pytest.approx(8.0) and s1.loc["random", "regret"] == pytest.approx(4.0)
    # within generator g2 (s1 vs s2): RoSE g2__s1 = 0.65, g2__s2 = 0.20: the oracle g2__s1 is picked
    g2 = by["g2"].judged.set_index("metric")
    assert by["g2"].champion == "g2__s1" and g2.loc["rose", "top1"] == 1 and g2.loc["rose", "regret"] == 0
    # distinct_1 within generator g1: s2 (0.4) over s1 (0.1); the oracle is s1 (0.62 vs 0.55): 7 points lost
    assert by["g1"].judged.set_index("metric").loc["distinct_1", "regret"] == pytest.approx(7.0)
    # over the groups of a dimension: RoSE hits in one of two strategies
    per_strategy = summary(cases, "strategy").set_index("metric")
    assert per_strategy.loc["rose", "cases"] == 2 and per_strategy.loc["rose", "top1_rate"] == pytest.approx(0.5)
    assert summary(cases).set_index("metric").loc["rose", "cases"] == 1  # the pool alone


def test_metric_keys_of_groups():
    t = tracked()
    cases = [build_case(t, "topic", "cy", NAMES, bootstrap=20),
             *build_groups(t, "topic", "cy", NAMES, "strategy", bootstrap=20)]  # fmt: skip
    values = metric_values(cases, summary(cases), {"strategy": summary(cases, "strategy")})
    assert values["rose/g1__s1"] == pytest.approx(rose_by_hand(NAMES)["g1__s1"])
    assert values["rose/strategy/s1/g1__s1"] == pytest.approx(0.81)
    assert values["selection/rose/top1"] == 0 and values["selection/strategy/s2/rose/top1"] == 1
    assert values["selection/strategy/s1/random/top1"] == pytest.approx(0.5)
    assert values["summary/strategy/rose/top1_rate"] == pytest.approx(0.5)
    assert not any(k.startswith("selection/generator/") for k in values)
