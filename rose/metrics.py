"""Classification metrics: the one implementation every stage uses (training, cells, score).

Macro-F1 averages the F1 of **every label of the task**, in the semantics of scikit-learn's
``f1_score(labels=task_labels, average="macro", zero_division=0)``: a label absent from both the truth and the
predictions of an evaluation contributes F1 = 0. So cells computed on datasets of one task are always averages
over the same labels, and a dataset short of a label is never an easier test. Pure numpy; no MLflow, no torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rose.errors import RoseError
from rose.naming import metric_key


def confusion(y_true: Sequence[int], y_pred: Sequence[int], num_labels: int) -> np.ndarray:
    """Counts with true labels as rows and predicted labels as columns."""
    matrix = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)), 1)
    return matrix


def per_label_f1(matrix: np.ndarray) -> np.ndarray:
    """F1 of each label from a confusion matrix (0 where a label has no true and no predicted example)."""
    matrix = matrix.astype(float)
    tp = np.diag(matrix)
    denominator = matrix.sum(axis=1) + matrix.sum(axis=0)
    return np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], label_names: Sequence[str]) -> dict:
    """``{"accuracy", "macro_f1", "f1/<label>"..., "n"}`` from label indices into ``label_names`` (the task's)."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} targets but {len(y_pred)} predictions")
    if not len(y_true):
        raise RoseError("cannot score an empty evaluation set")
    matrix = confusion(y_true, y_pred, len(label_names))
    f1 = per_label_f1(matrix)
    out = {"accuracy": float(np.trace(matrix) / matrix.sum()), "macro_f1": float(f1.mean()), "n": float(len(y_true))}
    out.update({metric_key("f1", label=label): float(v) for label, v in zip(label_names, f1, strict=True)})
    return out
