"""Scoring a classifier on labelled texts: batched prediction, metrics, confusion matrices.

The metric functions are pure (numpy in, dict out) and know nothing of MLflow. Metric names follow
docs/CONTRACTS.md: ``macro_f1``, ``accuracy``, ``f1/<label>`` and ``n``; :func:`prefixed` puts a set's name in
front (``eval/<set>/macro_f1``). The metrics themselves are :func:`rose.metrics.classification_metrics` (macro-F1
over every label of the task), the one implementation of the project.

Cross-evaluation cells (:mod:`rose.train.cells`) score logged seed models with :func:`evaluate_pyfunc`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rose.errors import RoseError
from rose.metrics import classification_metrics, confusion
from rose.naming import metric_key
from rose.train.batching import padded_batches
from rose.train.normalize import model_inputs

__all__ = ["classification_metrics", "confusion", "eval_key", "evaluate_pyfunc", "predict_proba", "prefixed"]

log = logging.getLogger(__name__)


def prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    """``{"macro_f1": x}`` -> ``{"<prefix>/macro_f1": x}``; ``prefix`` may have several parts (``eval/human``)."""
    return {f"{prefix}/{key}": value for key, value in metrics.items()}


def eval_key(set_name: str, metric: str = "macro_f1") -> str:
    """The metric key of an evaluation set: ``eval/<set>/<metric>``."""
    return metric_key("eval", set_name) + f"/{metric}"


def predict_proba(model, tokenizer, texts: Sequence[str], *, batch_size: int = 64, max_length: int = 128,
                  bf16: bool = False) -> np.ndarray:  # fmt: skip
    """Class probabilities of ``texts`` (rows in input order); texts are batched by length for speed."""
    import torch

    if not len(texts):
        return np.zeros((0, model.config.num_labels), dtype=np.float32)
    device = next(model.parameters()).device
    texts = model_inputs(model, texts)  # a classifier trained on normalised texts reads them normalised
    ids = tokenizer(texts, truncation=True, max_length=max_length, padding=False)["input_ids"]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out = np.zeros((len(ids), model.config.num_labels), dtype=np.float32)
    was_training = model.training
    model.eval()
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        for chunk, input_ids, mask in padded_batches(ids, batch_size, pad):
            logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits
            out[chunk] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
    model.train(was_training)
    return out


def pyfunc_labels(model, texts: Sequence[str], *, batch_size: int = 256) -> tuple[list[str], list[str]]:
    """(predicted label per text, the model's label names from its ``prob_<label>`` columns) of a logged rose
    classifier (``mlflow.pyfunc.load_model(...)``)."""
    import pandas as pd

    frames = [model.predict(pd.DataFrame({"text": list(texts[i : i + batch_size])}))
              for i in range(0, len(texts), batch_size)]  # fmt: skip
    if not frames:
        raise RoseError("cannot score an empty evaluation set")
    pred = pd.concat(frames, ignore_index=True)
    return [str(p) for p in pred["label"]], [c[5:] for c in pred.columns if c.startswith("prob_")]


def label_indices(labels: Sequence[str], predicted: Sequence[str], label_names: Sequence[str]):
    """(y_true, y_pred) as indices into ``label_names``; a label outside them is an error."""
    index = {name: i for i, name in enumerate(label_names)}
    unknown = sorted((set(labels) | set(predicted)) - set(index))
    if unknown:
        raise RoseError(f"labels {', '.join(unknown)} are not labels of the classifier ({', '.join(label_names)})")
    return [index[label] for label in labels], [index[label] for label in predicted]


def evaluate_pyfunc(model, texts: Sequence[str], labels: Sequence[str], label_names: Sequence[str] | None = None,
                    *, batch_size: int = 256) -> dict[str, float]:  # fmt: skip
    """Score a logged rose classifier (``mlflow.pyfunc.load_model(...)``) on labelled texts.

    ``labels`` are label names; ``label_names`` (default: the model's own, read from its ``prob_<label>`` output
    columns; pass the task's) fixes the labels macro-F1 averages over and the order of per-label F1. A label the
    model does not know is an error. Returns the keys of :func:`rose.metrics.classification_metrics`.
    """
    predicted, own = pyfunc_labels(model, texts, batch_size=batch_size)
    y_true, y_pred = label_indices(labels, predicted, list(label_names) if label_names is not None else own)
    return classification_metrics(y_true, y_pred, list(label_names) if label_names is not None else own)


def plot_confusion(matrix: np.ndarray, label_names: Sequence[str], path: Path, title: str = "") -> Path:
    """A confusion-matrix heat map (PNG) with counts in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(label_names)
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * n, 1.0 + 0.5 * n))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), label_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), label_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=9)
    peak = matrix.max() or 1
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center", fontsize=7, color="white" if value > peak / 2 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def confusion_csv(matrix: np.ndarray, label_names: Sequence[str], path: Path) -> Path:
    """The confusion matrix as CSV, true labels as rows (first column) and predicted labels as columns."""
    import pandas as pd

    pd.DataFrame(matrix, index=list(label_names), columns=list(label_names)).rename_axis("true").to_csv(path)
    return path
