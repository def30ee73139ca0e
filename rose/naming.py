"""Safe, stable, readable names for generators, candidates and evaluation sets.

Names end up in file names, MLflow run names and metric keys, so they use only ``[a-z0-9._-]``.
"""

from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^a-z0-9._-]+")


def short_hash(text: str, n: int = 6) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def slug(text: str) -> str:
    """Lower-case ``text`` and replace every run of unsafe characters by one dash."""
    out = _UNSAFE.sub("-", text.strip().lower()).strip("-.")
    return re.sub(r"-{2,}", "-", out) or "x"


def generator_name(generator: str) -> str:
    """A readable name for a generator given as a short name, a hub id or a path.

    Short names and hub ids keep their words (``google/gemma-3-4b-it`` -> ``google-gemma-3-4b-it``);
    a local path keeps its last part plus a hash of the whole path, so two folders with the same
    name stay apart. The result never changes for the same input.
    """
    text = generator.strip()
    is_path = text.startswith(("/", "./", "../", "~")) or "\\" in text or text.count("/") > 1
    if is_path:
        base = re.split(r"[\\/]+", text.rstrip("/\\"))[-1]
        base = re.sub(r"\.(gguf|bin|safetensors)$", "", base, flags=re.I)
        return f"{slug(base)}-{short_hash(text)}"
    name = slug(text)
    # a name that lost characters other than case and separators gets a hash, so different ids never meet
    if name != re.sub(r"[/:\s]+", "-", text.lower()):
        name = f"{name}-{short_hash(text)}"
    return name[:80]


def candidate_name(generator: str, strategy: str) -> str:
    """The name of a generation configuration: ``<generator>__<strategy>``."""
    return f"{generator_name(generator)}__{slug(strategy)}"


def label_key(label: str) -> str:
    """A label as a metric-key part, unique for every label in any script: the readable slug, plus
    ``-<short hash of the label>`` whenever the slug loses information (another script, case, punctuation):
    ``travel`` -> ``travel``, ``science/technology`` -> ``science-technology-<hash>``, ``ጤና`` -> ``x-<hash>``."""
    name = slug(label)
    return name if name == label else f"{name}-{short_hash(label)}"


def metric_key(*parts: str, label: str | None = None) -> str:
    """An MLflow metric key from parts, each part after the first made safe; ``label`` (a label of a task) is
    appended as its :func:`label_key`."""
    key = "/".join(slug(p) if i else p for i, p in enumerate(parts))
    return key if label is None else f"{key}/{label_key(label)}"
