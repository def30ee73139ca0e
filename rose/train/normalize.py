"""The reference code's text normalisation (``--normalized``): lower-case, then drop ASCII punctuation.

A classifier trained on normalised texts must read normalised texts: the flag travels in the model's own config
(:data:`CONFIG_FLAG`), so every prediction path (dev scoring, evaluation sets, the logged pyfunc model, the
registered champion) normalises its inputs the same way without being told.

Reference: tanikina/multilingual-generation ``src/train_roberta.py`` (``normalize_text``: ``str.lower`` and
``string.punctuation``, the ASCII set only; other scripts' punctuation is kept, as there).
"""

from __future__ import annotations

import string
from collections.abc import Sequence

CONFIG_FLAG = "rose_normalized_text"
_DROP = str.maketrans("", "", string.punctuation)


def normalize_text(text: str) -> str:
    """``text`` lower-cased, without the characters of ``string.punctuation``."""
    return text.lower().translate(_DROP)


def normalize_texts(texts: Sequence[str]) -> list[str]:
    return [normalize_text(t) for t in texts]


def reads_normalized(model) -> bool:
    """Whether ``model`` (a transformers model) was trained on normalised texts."""
    return bool(getattr(model.config, CONFIG_FLAG, False))


def model_inputs(model, texts: Sequence[str]) -> list[str]:
    """``texts`` as ``model`` was trained to read them."""
    return normalize_texts(texts) if reads_normalized(model) else list(texts)
