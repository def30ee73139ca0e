"""Logged seed models for scoring cells: the base loaded once per worker, the trunk computed once per dataset.

A seed's logged classifier (:mod:`rose.train.pyfunc`, ``delta`` layout) holds only what training changed. When that
leaves the embeddings and the lower layers untouched (``train_top_layers``), every seed and every classifier of the
same base shares them: the base comes from the worker's :mod:`model pool <rose.train.pool>`, the seed model is the
base with its own top layers and head (a copy of those only), and the frozen layers' output on a dataset comes from
the :mod:`trunk cache <rose.train.trunk>`, so a cell costs the top layers. Predictions equal the pyfunc model's
(the same modules in eval mode, fp32). A seed whose delta touches the embeddings (every layer trained), or a
self-contained model, is scored through ``mlflow.pyfunc`` as before.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rose.train import delta, pool, pyfunc, trunk

log = logging.getLogger(__name__)

LAYER = re.compile(r"\.encoder\.layer\.(\d+)\.")


@dataclass
class SeedModel:
    """A seed's classifier above a shared trunk: ``probabilities(texts)`` in input order."""

    base: object  # the pooled base classifier (its trunk modules are shared, never changed)
    model: object  # the seed's classifier: the base's trunk modules, its own top layers and head
    tokenizer: object
    labels: list[str]
    max_length: int
    cut: int
    base_digest: str

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        return trunk.probabilities(self.base, self.model, self.tokenizer, texts, self.cut,
                                   base_digest=self.base_digest, max_length=self.max_length)  # fmt: skip

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [self.labels[i] for i in self.probabilities(texts).argmax(axis=1)] if len(texts) else []


def cut_of_delta(keys: Sequence[str], layers: int) -> int:
    """How many lower layers a delta leaves untouched (0 when it changes the embeddings or anything else below)."""
    cut = layers
    for key in keys:
        name = key.split("::")[1]
        if ".embeddings." in f".{name}":
            return 0
        if match := LAYER.search(f".{name}"):
            cut = min(cut, int(match[1]))
    return cut


def _base(path: Path, digest: str, folder: Path):
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    config = AutoConfig.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(path, config=config).eval()
    return model, AutoTokenizer.from_pretrained(path)


def load(folder: str | Path) -> SeedModel | None:
    """The seed model of a ``classifier`` folder above the shared trunk, or None when it cannot share one."""
    from safetensors.torch import load_file

    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    if meta.get("layout") != "delta":
        return None
    base = json.loads((folder / "base.json").read_text())
    try:
        path = delta.resolve_base(base["id"], base.get("path", ""), base["digest"])
    except delta.BaseModelError:
        return None  # the pyfunc path says what is wrong
    config = json.loads((folder / "config.json").read_text())
    key = (str(Path(path).resolve()), base["digest"], json.dumps(config, sort_keys=True))
    model, tokenizer = pool.pool().get(key, lambda: _base(path, base["digest"], folder))
    tensors = load_file(str(folder / delta.DELTA_FILE))
    cut = cut_of_delta(list(tensors), trunk.layer_count(model))
    if cut < 1:
        return None
    shared = {id(m): m for m in trunk.frozen_modules(model, cut)}
    seed_model = copy.deepcopy(model, memo=dict(shared))  # the trunk's modules shared, the rest copied
    delta.apply_delta(seed_model, tensors)
    seed_model.eval()
    return SeedModel(model, seed_model, tokenizer, list(meta["labels"]), int(meta["max_length"]), cut, base["digest"])


def download(seed_run_id: str) -> Path | None:
    """The ``classifier`` folder of a seed run's logged model (None when it has none)."""
    import mlflow

    try:
        local = Path(mlflow.artifacts.download_artifacts(pyfunc.model_uri(seed_run_id)))
    except Exception:  # noqa: BLE001 - no model logged: the pyfunc path says so
        return None
    meta = next(local.rglob("meta.json"), None)
    return meta.parent if meta else None
