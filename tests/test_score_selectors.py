"""Label-free selectors with known answers (rose.score.selectors: pure functions over arrays)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rose.score import selectors as sel

LABELS = ["a", "b", "c"]


def gaussian(n: int, shift: float = 0.0, dim: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)) + shift


def test_mmd_is_near_zero_for_a_sample_of_itself_and_larger_for_a_shifted_set():
    pool = gaussian(400, seed=1)
    same = pool[np.random.default_rng(2).permutation(400)[:150]]
    alike = gaussian(150, seed=3)
    shifted = gaussian(150, shift=1.0, seed=4)
    near, other, far = sel.mmd_target(same, pool), sel.mmd_target(alike, pool), sel.mmd_target(shifted, pool)
    assert abs(near) < 0.01 and abs(other) < 0.01
    assert far > 0.1 and far > 10 * max(abs(near), abs(other))
    assert sel.mmd_target(gaussian(150, shift=2.0, seed=4), pool) > far  # further shifted, larger
    with pytest.raises(sel.NotAvailable):
        sel.mmd_target(pool[:1], pool)


def test_median_bandwidth_is_the_median_distance():
    x, y = np.array([[0.0], [1.0]]), np.array([[3.0]])
    assert sel.median_bandwidth(x, y) == 2.0  # distances 1, 3, 2


def test_pad_is_near_zero_for_indistinguishable_sets_and_near_its_maximum_for_separable_ones():
    assert sel.pad_target(gaussian(200, seed=1), gaussian(300, seed=2)) < 0.3
    separable = sel.pad_target(gaussian(200, shift=6.0, seed=1), gaussian(300, seed=2))
    assert separable > 1.95 and separable <= 2.0


def test_mauve_is_not_available_below_its_minimum():
    with pytest.raises(sel.NotAvailable, match="50 or more texts on each side"):
        sel.mauve_target(gaussian(10), gaussian(200))


def test_mauve_scores_closer_sets_higher_when_installed():
    pytest.importorskip("mauve")
    pool = gaussian(300, seed=1)
    close, far = sel.mauve_target(gaussian(200, seed=2), pool), sel.mauve_target(gaussian(200, 3.0, seed=3), pool)
    assert 0 <= far < close <= 1 and close > 0.8


def test_dcscore_bounds_identical_and_orthogonal():
    n = 12
    identical = np.tile(np.array([[1.0, 2.0, 3.0]]), (n, 1))
    assert sel.dcscore(identical) == pytest.approx(1 / n)
    orthogonal = np.eye(n) * 5.0  # normalised first: scale does not matter
    assert sel.dcscore(orthogonal) == pytest.approx(math.e / (math.e + n - 1))
    assert sel.dcscore(orthogonal, tau=0.05) == pytest.approx(1.0, abs=1e-6)
    assert 1 / n < sel.dcscore(gaussian(n)) < 1


def test_dcscore_is_measured_at_a_common_size():
    big, small = gaussian(300, dim=4, seed=1), gaussian(30, dim=4, seed=2)
    # the same distribution measured at its own size differs (about as 1/n); at a common size it agrees closely
    assert sel.dcscore(small) > 5 * sel.dcscore(big)
    assert sel.dcscore(big, size=30, draws=20) == pytest.approx(sel.dcscore(small), abs=0.05)


def test_atc_is_exact_on_a_constructed_case():
    # dev: confidences 0.9 0.8 0.7 0.6, three of four right -> threshold between 0.7 and 0.6 (0.65)
    dev = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.6, 0.4]])
    truth = np.array([0, 1, 0, 1])  # the last one is wrong (predicted 0)
    assert sel.atc_threshold(dev.max(1), dev.argmax(1) == truth) == pytest.approx(0.65)
    pool = np.array([[0.95, 0.05], [0.34, 0.66], [0.5, 0.5], [0.3, 0.7], [0.1, 0.9], [0.62, 0.38]])
    assert sel.atc_target([dev], [truth], [pool]) == pytest.approx(4 / 6)  # 0.95 0.66 0.7 0.9 above 0.65
    # a second seed right on every dev example: the threshold falls just below 0.6, so 0.62 counts too
    assert sel.atc_target([dev, dev], [truth, dev.argmax(1)], [pool, pool]) == pytest.approx((4 / 6 + 5 / 6) / 2)
    # a seed wrong on every dev example: the threshold is just above 0.9, so only 0.95 counts
    assert sel.atc_target([dev], [1 - dev.argmax(1)], [pool]) == pytest.approx(1 / 6)


def test_agreement_is_one_for_identical_classifiers():
    preds = np.array([0, 1, 2, 1, 0])
    same = sel.agreement_target({"x": [preds, preds], "y": [preds], "z": [preds]})
    assert same == {"x": 1.0, "y": 1.0, "z": 1.0}
    other = sel.agreement_target({"x": [preds], "y": [preds], "z": [(preds + 1) % 3]})
    assert other["x"] == 0.5 and other["z"] == 0.0
    assert sel.agreement_target({"x": [preds], "y": [preds], "z": [(preds + 1) % 3]}, ["x", "y"]) == {
        "x": 1.0,
        "y": 1.0,
    }


def clusters(n_per_label: int, seed: int, shuffle: bool = False) -> tuple[np.ndarray, list[str]]:
    """Three labels, each a cluster around its own centre; ``shuffle`` permutes the labels across examples."""
    rng = np.random.default_rng(seed)
    centres = np.eye(3, 16) * 4
    x = np.vstack([centres[i] + rng.normal(size=(n_per_label, 16)) for i in range(3)])
    y = [label for label in LABELS for _ in range(n_per_label)]
    return x, (list(rng.permutation(y)) if shuffle else y)


def test_rose_probe_ranks_last_a_candidate_whose_labels_are_shuffled():
    data = {"good": clusters(20, 1), "also_good": clusters(15, 2), "noisy": clusters(20, 3, shuffle=True),
            "fine": clusters(25, 4)}  # fmt: skip
    matrix = sel.probe_matrix({k: v[0] for k, v in data.items()}, {k: v[1] for k, v in data.items()}, LABELS,
                              seeds=(1, 2, 3), per_label=15)  # fmt: skip
    scores = sel.rose_probe(matrix)
    assert min(scores, key=scores.get) == "noisy"
    assert scores["noisy"] < 0.6 < min(scores[k] for k in ("good", "also_good", "fine"))
    assert np.isnan(matrix.loc["good", "good"])
    assert set(sel.rose_probe(matrix, ["good", "noisy"])) == {"good", "noisy"}
    assert sel.rank_agreement(scores, {"good": 3, "also_good": 2, "noisy": 0, "fine": 1}) > 0.3


def test_rank_agreement_needs_three():
    assert math.isnan(sel.rank_agreement({"a": 1, "b": 2}, {"a": 1, "b": 2}))
    assert sel.rank_agreement({"a": 1, "b": 2, "c": 3}, {"a": 3, "b": 5, "c": 9}) == 1.0
