"""The unlabelled pool: target-language text without labels, which the label-free selectors compare candidates with.

``--unlabelled`` names it: a file (CSV, TSV, JSONL, parquet) or a datasets folder with a text column, a hub dataset
id (``org/name``), or ``human-train`` (the case's human train split with its labels dropped; ``human-train:<folder>``
names the data folder). :func:`read_pool` reads it; :func:`clean` removes what must not be in it: texts shown to any
candidate as demonstrations (a candidate that copied them would look close to the target for the wrong reason) and
texts of the human test set used as the oracle (the pool would leak the oracle into the selection), compared after
case-folding and collapsing whitespace, and duplicates; then caps it by a seeded sample. The pool is identified by
its content (:attr:`Pool.digest`, over the texts as read), which enters the score run's digest.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from rose.errors import RoseError
from rose.locations import SHARED_DATA
from rose.score.intrinsic import normalise

log = logging.getLogger(__name__)

HUMAN_TRAIN = "human-train"


@dataclass
class Pool:
    """The cleaned pool and what was removed from it."""

    texts: list[str]
    source: str  # as given
    digest: str  # sha256 of the texts as read (before cleaning), "sha256:<hex>"
    read: int  # texts read (non-empty)
    demonstrations: int = 0  # removed: shown to a candidate as a demonstration
    oracle: int = 0  # removed: in the human test set
    duplicates: int = 0  # removed: a repeat of an earlier text
    sampled_out: int = 0  # left out by the size cap

    def describe(self) -> str:
        sample = f", {self.sampled_out} more left out by the sample cap" if self.sampled_out else ""
        return (f"unlabelled pool {self.source}: {len(self.texts)} texts of {self.read} read ({self.demonstrations} "
                f"shown to a candidate as demonstrations, {self.oracle} in the human test set and {self.duplicates} "
                f"repeated were removed{sample})")  # fmt: skip


def texts_digest(texts: list[str]) -> str:
    h = hashlib.sha256()
    for text in texts:
        h.update(text.encode("utf-8") + b"\0")
    return "sha256:" + h.hexdigest()


def is_human_train(spec: str) -> bool:
    return spec == HUMAN_TRAIN or spec.startswith(HUMAN_TRAIN + ":")


def read_pool(spec: str, task, language: str, *, column: str = "text", human_source: str = "") -> list[str]:
    """The texts ``spec`` names (see the module docstring); empty texts are dropped. RoseError when there are none,
    or the text column is missing."""
    spec = spec.strip()
    if is_human_train(spec):
        from rose.human_data import load_split

        source = spec[len(HUMAN_TRAIN) + 1 :] or human_source or SHARED_DATA
        texts = load_split(task, language, "train", source).texts
        where = f"the human train split of {getattr(task, 'name', task)}/{language} at {source}"
    else:
        rows, where = _rows(spec)
        if rows and column not in rows[0][1]:
            known = ", ".join(sorted(map(str, rows[0][1])))
            raise RoseError(f"{where}: no column {column!r} for the unlabelled texts (columns: {known}): pass "
                            "--unlabelled-column")  # fmt: skip
        texts = [str(row.get(column) or "") for _, row in rows]
    texts = [t for t in (t.strip() for t in texts) if t]
    if not texts:
        raise RoseError(f"{where}: no unlabelled texts (the {column!r} column is empty): fix --unlabelled")
    return texts


def _rows(spec: str) -> tuple[list[tuple[int, dict]], str]:
    """Rows of a file (:func:`rose.human_data.read_rows`), a datasets ``save_to_disk`` folder or a hub dataset (its
    train split), with where they came from."""
    from rose.human_data import read_rows
    from rose.locations import is_hub_id

    path = Path(spec).expanduser()
    if path.is_file():
        return read_rows(path), str(path)
    if not path.is_dir() and not is_hub_id(spec):
        raise RoseError(f"no such file: {spec}: --unlabelled takes a .csv/.jsonl/.parquet file, a datasets folder, "
                        "a hub id (org/name) or human-train")  # fmt: skip
    try:
        import datasets

        ds = datasets.load_from_disk(str(path)) if path.is_dir() else datasets.load_dataset(spec, split="train")
        if hasattr(ds, "keys") and not hasattr(ds, "features"):  # a DatasetDict: its train split, else its first
            ds = ds["train"] if "train" in ds else ds[next(iter(ds))]
    except Exception as exc:  # noqa: BLE001 - no network, no such dataset, an unreadable folder
        raise RoseError(f"cannot read the unlabelled texts {spec}: {str(exc).splitlines()[0]}") from None
    return list(enumerate(ds.to_list(), 1)), spec


def clean(texts: list[str], source: str, *, demonstrations: list[str] = (), oracle: list[str] = (),
          max_n: int | None = None, seed: int = 0) -> Pool:  # fmt: skip
    """The pool without demonstrations, oracle texts and repeats, capped at ``max_n`` texts (a seeded sample)."""
    import numpy as np

    shown, tested = {normalise(t) for t in demonstrations}, {normalise(t) for t in oracle}
    pool = Pool([], source, texts_digest(texts), len(texts))
    seen: set[str] = set()
    for text in texts:
        key = normalise(text)
        if key in shown:
            pool.demonstrations += 1
        elif key in tested:
            pool.oracle += 1
        elif key in seen:
            pool.duplicates += 1
        else:
            seen.add(key)
            pool.texts.append(text)
    if max_n and len(pool.texts) > max_n:
        keep = sorted(np.random.default_rng(seed).permutation(len(pool.texts))[:max_n])
        pool.sampled_out = len(pool.texts) - max_n
        pool.texts = [pool.texts[i] for i in keep]
    return pool


def human_source(human_ref: str) -> str:
    """The data folder of a ``human:<folder>`` reference ("" when it names none)."""
    return human_ref.removeprefix("human:") if human_ref.startswith("human:") else ""
