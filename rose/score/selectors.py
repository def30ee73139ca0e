"""Label-free selectors: pure functions that rank candidates' synthetic data without labelled human data.

Nothing here loads a model, reads a file or knows about MLflow: the caller (:mod:`rose.score.label_free`) passes
embeddings, predicted probabilities and labels. Each function's docstring names its reference.

- Distribution match to unlabelled target text: :func:`mmd_target`, :func:`pad_target`, :func:`mauve_target`.
- Diversity of the synthetic data alone: :func:`dcscore`.
- Label-free accuracy estimates of the candidates' trained classifiers on the target text: :func:`atc_target`,
  :func:`agreement_target`.
- RoSE's round robin with logistic-regression probes on frozen embeddings: :func:`probe_matrix`, :func:`rose_probe`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

# Direction of each selector when it picks a candidate: +1 higher is better, -1 lower is better.
DIRECTION: dict[str, int] = {
    "mmd_target": -1, "pad_target": -1, "mauve_target": 1, "dcscore": 1, "atc_target": 1, "agreement_target": 1,
    "rose_probe": 1,
}  # fmt: skip
TARGET_TEXT = ("mmd_target", "pad_target", "mauve_target", "atc_target", "agreement_target")  # need the pool
MAUVE_MIN = 50  # texts on each side below which MAUVE's quantisation (k-means over n/10 clusters) is not reported


class NotAvailable(Exception):
    """A selector that cannot be computed on these inputs; the message says why."""


def _matrix(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"embeddings are a 2-D array (texts x dimensions), not shape {x.shape}")
    return x


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1, norms)


def _sample(x: np.ndarray, n: int | None, rng: np.random.Generator) -> np.ndarray:
    return x[np.sort(rng.permutation(len(x))[:n])] if n and len(x) > n else x


def _sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.maximum(d, 0.0)


def median_bandwidth(x: np.ndarray, y: np.ndarray) -> float:
    """The median heuristic: the median distance between distinct points of the pooled sample (1 if all equal)."""
    z = np.vstack([x, y])
    d = np.sqrt(_sq_distances(z, z)[np.triu_indices(len(z), 1)])
    d = d[d > 0]
    return float(np.median(d)) if len(d) else 1.0


def mmd_target(candidate, pool, *, max_n: int | None = 2000, seed: int = 0, bandwidth: float | None = None) -> float:
    """Squared maximum mean discrepancy between a candidate's embeddings and the unlabelled pool's (lower = closer).

    Kernel: Gaussian RBF ``exp(-|a-b|^2 / (2 s^2))`` with ``s`` the median distance of the pooled points (median
    heuristic), unbiased U-statistic estimate (so it is about 0, and may be slightly negative, for two samples of one
    distribution). RBF because it is characteristic (MMD = 0 only for equal distributions), unlike the linear
    kernel, which compares only the means (centroid similarity); the median heuristic because there is no held-out
    data to tune ``s`` on and it adapts to the encoder's scale. At most ``max_n`` points per side (seeded sample).

    Reference: Gretton et al. 2012, "A Kernel Two-Sample Test" (JMLR), Lemma 6 (unbiased MMD^2_u); as a synthetic
    data selector, Chen and Zhong 2025, SynQuE.
    """
    rng = np.random.default_rng(seed)
    x, y = _sample(_matrix(candidate), max_n, rng), _sample(_matrix(pool), max_n, rng)
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise NotAvailable(f"MMD needs two or more texts on each side ({m} and {n})")
    s = bandwidth or median_bandwidth(x, y)
    k = lambda a, b: np.exp(-_sq_distances(a, b) / (2 * s * s))  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    xx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    yy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(xx + yy - 2 * kxy.mean())


def pad_target(candidate, pool, *, folds: int = 5, max_n: int | None = 2000, seed: int = 0) -> float:
    """Proxy A-distance between a candidate's embeddings and the pool's: ``2 (1 - 2 err)``, in [0, 2] (lower =
    harder to tell apart = closer).

    ``err`` is the cross-validated (stratified ``folds``-fold) balanced error of a logistic regression (L2, C = 1,
    class weights balanced, so unequal sizes do not lower the error by themselves) that tells candidate texts from
    pool texts; an error above 0.5 (chance) counts as 0.5. At most ``max_n`` points per side (seeded sample).

    Reference: Ben-David et al. 2007, "Analysis of representations for domain adaptation" (proxy A-distance);
    Chen and Zhong 2025, SynQuE (PAD as a synthetic-data selector).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    rng = np.random.default_rng(seed)
    x, y = _sample(_matrix(candidate), max_n, rng), _sample(_matrix(pool), max_n, rng)
    folds = min(folds, len(x), len(y))
    if folds < 2:
        raise NotAvailable(f"PAD needs two or more texts on each side ({len(x)} and {len(y)})")
    z, side = np.vstack([x, y]), np.r_[np.zeros(len(x)), np.ones(len(y))]
    clf = LogisticRegression(max_iter=1000, class_weight="balanced")
    predicted = cross_val_predict(clf, z, side, cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    err = min(0.5, 1 - balanced_accuracy_score(side, predicted))
    return float(2 * (1 - 2 * err))


def mauve_target(candidate, pool, *, min_n: int = MAUVE_MIN, seed: int = 0) -> float:
    """MAUVE between a candidate's embeddings and the pool's (higher = closer), from the ``mauve-text`` package on
    the given features (no model of its own is loaded). Not available below ``min_n`` texts on either side (its
    k-means quantisation into n/10 clusters is meaningless there) or without the package.

    Reference: Pillutla et al. 2021, "MAUVE: Measuring the Gap Between Neural Text and Human Text" (NeurIPS);
    Chen and Zhong 2025, SynQuE.
    """
    x, y = _matrix(candidate), _matrix(pool)
    if len(x) < min_n or len(y) < min_n:
        raise NotAvailable(f"MAUVE needs {min_n} or more texts on each side ({len(x)} and {len(y)})")
    try:
        import mauve
    except ImportError:
        raise NotAvailable("the mauve-text package is not installed (pip install mauve-text)") from None
    out = mauve.compute_mauve(p_features=x, q_features=y, seed=seed, verbose=False, device_id=-1)
    return float(out.mauve)


def dcscore(embeddings, *, tau: float = 1.0, size: int | None = None, draws: int = 5, seed: int = 0) -> float:
    """DCScore per example: the trace of the row-softmax of ``X X^T / tau`` over the L2-normalised embeddings
    ``X``, divided by the number of examples ``n`` (higher = more diverse).

    Each example is classified among all the examples by its similarities; the trace sums the probabilities that
    each is recognised as itself. Divided by ``n`` it lies in [1/n, 1): exactly ``1/n`` when every embedding is
    identical, ``e^(1/tau) / (e^(1/tau) + n - 1)`` when they are orthogonal. Divided by ``n`` it still falls
    roughly as 1/n for one distribution (at ``tau`` = 1 the trace itself barely grows with n), so datasets of
    different sizes are made comparable by measuring them at one size: with ``size``, the mean over ``draws`` seeded samples of ``size`` examples (the caller passes
    the smallest dataset's size), so every dataset is measured at the same ``n``.

    Reference: Zhu et al. 2025, "Measuring Diversity in Synthetic Datasets" (ICML), DCScore.
    """
    x = _unit(_matrix(embeddings))
    if len(x) == 0:
        raise NotAvailable("DCScore needs one or more texts")
    if not size or len(x) <= size:
        return _dc(x, tau)
    rng = np.random.default_rng(seed)
    return float(np.mean([_dc(x[rng.permutation(len(x))[:size]], tau) for _ in range(draws)]))


def _dc(x: np.ndarray, tau: float) -> float:
    logits = x @ x.T / tau
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return float(np.trace(p / p.sum(axis=1, keepdims=True)) / len(x))


def atc_threshold(confidence, correct) -> float:
    """The ATC threshold: a value ``t`` such that the share of ``confidence`` values above ``t`` equals the share
    of ``correct`` predictions (rounded to a whole number of examples; midway between two neighbouring values)."""
    conf = np.sort(np.asarray(confidence, dtype=np.float64))[::-1]
    n = len(conf)
    if n == 0:
        raise NotAvailable("ATC needs a dev split with one or more examples")
    k = int(round(float(np.mean(np.asarray(correct, dtype=bool))) * n))
    if k == 0:
        return float(np.nextafter(conf[0], np.inf))
    if k == n:
        return float(np.nextafter(conf[-1], -np.inf))
    return float((conf[k - 1] + conf[k]) / 2)


def atc_target(dev_probs: Sequence, dev_truth: Sequence, pool_probs: Sequence) -> float:
    """Average Thresholded Confidence: the accuracy a classifier is estimated to have on unlabelled text (0-1).

    Per seed ``s``: the threshold ``t_s`` on max-softmax confidence fitted on the seed's own dev split (the
    candidate's held-out synthetic data) so that the share above it equals its dev accuracy
    (:func:`atc_threshold`); the estimate is the share of pool texts whose confidence exceeds ``t_s``. Averaged over
    seeds. Arguments are per-seed lists: ``dev_probs[s]`` (dev texts x labels), ``dev_truth[s]`` (label indices),
    ``pool_probs[s]`` (pool texts x labels).

    Reference: Garg et al. 2022, "Leveraging Unlabeled Data to Predict Out-of-Distribution Performance" (ICLR).
    """
    if not len(dev_probs):
        raise NotAvailable("ATC needs one or more trained seeds")
    estimates = []
    for dev, truth, pool in zip(dev_probs, dev_truth, pool_probs, strict=True):
        dev, pool = np.asarray(dev, dtype=np.float64), np.asarray(pool, dtype=np.float64)
        t = atc_threshold(dev.max(axis=1), dev.argmax(axis=1) == np.asarray(truth))
        estimates.append(float((pool.max(axis=1) > t).mean()))
    return float(np.mean(estimates))


def agreement_matrix(predictions: Mapping[str, Sequence]) -> pd.DataFrame:
    """Candidate x candidate: the mean share of pool texts on which a seed of the row's classifier and a seed of
    the column's predict the same label (every pair of seeds; the diagonal is NaN)."""
    names = list(predictions)
    out = pd.DataFrame(np.nan, index=names, columns=names)
    for a in names:
        for b in names:
            if a != b:
                pairs = [np.mean(np.asarray(p) == np.asarray(q)) for p in predictions[a] for q in predictions[b]]
                out.loc[a, b] = float(np.mean(pairs)) if pairs else np.nan
    return out


def agreement_target(predictions: Mapping[str, Sequence], candidates: Sequence[str] | None = None) -> dict[str, float]:
    """Each candidate's classifiers' mean agreement with the other candidates' classifiers on the pool (0-1).

    ``predictions[c]`` holds, per seed of candidate ``c``'s classifier, its predicted label for every pool text.
    RoSE's round robin played on real text instead of synthetic: without labels, a classifier that agrees with
    the others' majority view is taken to be right more often. ``candidates`` restricts the round to a group.

    Reference: Jiang et al. 2022, "Assessing Generalization of SGD via Disagreement" (ICLR); Cegin et al. 2025,
    RoSE (arXiv 2510.06143), the round robin.
    """
    return _row_means(agreement_matrix(predictions), candidates)


def agreement_target_from(matrix: pd.DataFrame, candidates: Sequence[str] | None = None) -> dict[str, float]:
    """:func:`agreement_target` from an :func:`agreement_matrix` (within a group of ``candidates`` when given)."""
    return _row_means(matrix, candidates)


def _row_means(matrix: pd.DataFrame, candidates: Sequence[str] | None) -> dict[str, float]:
    names = list(candidates) if candidates is not None else list(matrix.index)
    sub = matrix.reindex(index=names, columns=names)
    return {n: float(sub.loc[n].drop(n).mean()) if len(names) > 1 else float("nan") for n in names}


def _probe_fit(x: np.ndarray, y: np.ndarray):
    from sklearn.linear_model import LogisticRegression

    if len(set(y.tolist())) < 2:  # one label only: the probe always answers it
        only = y[0]
        return lambda z: np.full(len(z), only)
    clf = LogisticRegression(max_iter=1000).fit(x, y)
    return clf.predict


def _equal_per_label(y: np.ndarray, per_label: int | None, rng: np.random.Generator) -> np.ndarray:
    index = []
    for label in sorted(set(y.tolist())):
        where = np.flatnonzero(y == label)
        index.extend(rng.permutation(where)[:per_label] if per_label else where)
    return np.sort(np.asarray(index, dtype=int))


def probe_matrix(
    embeddings: Mapping[str, np.ndarray],
    labels: Mapping[str, Sequence[str]],
    label_set: Sequence[str],
    *,
    seeds: Sequence[int] = (0,),
    per_label: int | None = None,
) -> pd.DataFrame:
    """The round robin with probes: rows are the candidate whose data trained a logistic-regression probe on the
    frozen (L2-normalised) embeddings, columns the candidate whose data it is tested on; each cell the macro-F1
    over every label of ``label_set`` (:func:`rose.metrics.classification_metrics`), averaged over ``seeds``. Each
    seed trains on a seeded sample of at most ``per_label`` examples per label (all when None: every seed alike).
    Texts whose label is not in ``label_set`` are left out."""
    from rose.metrics import classification_metrics

    names = list(embeddings)
    index = {label: i for i, label in enumerate(label_set)}
    x = {n: _unit(_matrix(embeddings[n])) for n in names}
    y = {n: np.asarray([index.get(lab, -1) for lab in labels[n]]) for n in names}
    out = pd.DataFrame(np.nan, index=names, columns=names)
    for a in names:
        scores: dict[str, list[float]] = {b: [] for b in names if b != a}
        for seed in seeds:
            keep = _equal_per_label(y[a][y[a] >= 0], per_label, np.random.default_rng(seed))
            known = np.flatnonzero(y[a] >= 0)[keep]
            if not len(known):
                continue
            predict = _probe_fit(x[a][known], y[a][known])
            for b in scores:
                mask = y[b] >= 0
                if mask.any():
                    scores[b].append(classification_metrics(y[b][mask], predict(x[b][mask]), label_set)["macro_f1"])
        for b, values in scores.items():
            out.loc[a, b] = float(np.mean(values)) if values else np.nan
    out.index.name, out.columns.name = "train_candidate", "eval_candidate"
    return out


def rose_probe(matrix: pd.DataFrame, candidates: Sequence[str] | None = None) -> dict[str, float]:
    """RoSE with probes: each candidate's probe's mean macro-F1 on the other candidates' data (a row mean of
    :func:`probe_matrix`, without the diagonal); ``candidates`` restricts the round to a group.

    Reference: Cegin et al. 2025, RoSE (arXiv 2510.06143), with the fine-tuned classifier replaced by a linear
    probe on frozen encoder embeddings (Alain and Bengio 2017, "Understanding intermediate layers using linear
    classifier probes").
    """
    return _row_means(matrix, candidates)


def rank_agreement(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """Spearman correlation of two scores over the candidates both have (NaN below three)."""
    from scipy import stats

    both = pd.concat([pd.Series(a, dtype=float), pd.Series(b, dtype=float)], axis=1, join="inner").dropna()
    if len(both) < 3 or both.iloc[:, 0].nunique() < 2 or both.iloc[:, 1].nunique() < 2:
        return float("nan")
    return float(stats.spearmanr(both.iloc[:, 0], both.iloc[:, 1]).statistic)
