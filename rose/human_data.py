"""Loading human-labelled data, sampling demonstrations, per-label caps and stratified splits.

Sources a user can name (``--source``):
- a folder laid out as ``<dataset>/<lang>/{train,dev,test}.jsonl`` (the layout of ``../shared/data``);
- a single ``.jsonl``, ``.csv`` or ``.parquet`` file, with a column mapping for text and label;
- ``hub``: the Hugging Face hub ids users know (``Davlan/sib200``, ``AmazonScience/massive``, ...), via ``datasets``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from rose.catalog import Language, Task, get_language, get_task
from rose.errors import MissingDependency, RoseError

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")


@dataclass
class LabelledData:
    """Texts with labels of one task and language, plus what loading dropped and why."""

    texts: list[str]
    labels: list[str]
    name: str = ""
    dropped: Counter = field(default_factory=Counter)

    def __len__(self) -> int:
        return len(self.texts)

    def by_label(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = defaultdict(list)
        for text, label in zip(self.texts, self.labels, strict=True):
            out[label].append(text)
        return dict(out)

    def counts(self) -> Counter:
        return Counter(self.labels)

    def subset(self, index: list[int], name: str | None = None) -> LabelledData:
        return LabelledData([self.texts[i] for i in index], [self.labels[i] for i in index], name or self.name)


def read_text(path: Path, encoding: str = "utf-8") -> str:
    """The text of a file; a byte the encoding cannot decode is a RoseError naming the file, line and encoding."""
    data = path.read_bytes()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start : exc.start + 1].hex()
        raise RoseError(
            f"{path}:{line}: byte 0x{byte} is not valid {encoding}: pass --encoding with the file's encoding "
            "(e.g. latin-1, cp1252) or save it as UTF-8"
        ) from None
    except LookupError:
        raise RoseError(f"unknown text encoding {encoding!r}: use e.g. utf-8, latin-1 or cp1252") from None


def read_rows(path: Path, encoding: str = "utf-8") -> list[tuple[int, dict]]:
    """Rows of a jsonl, csv or parquet file with their line numbers (1-based; header is line 1 in csv)."""
    if not path.exists():
        raise RoseError(
            f"no such file or folder: {path}: check the path (a folder laid out as <dataset>/<lang>/<split>.jsonl, "
            "or a .jsonl/.csv/.parquet file)"
        )
    if path.is_dir():
        raise RoseError(f"{path} is a folder: pass a .jsonl, .csv, .tsv or .parquet file")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        rows = []
        for n, line in enumerate(read_text(path, encoding).split("\n"), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RoseError(f"{path}:{n}: not valid JSON ({exc.msg}): fix or delete that line") from None
            if not isinstance(row, dict):
                raise RoseError(f"{path}:{n}: expected a JSON object per line, got {type(row).__name__}")
            rows.append((n, row))
        return rows
    if suffix in (".csv", ".tsv"):
        text = read_text(path, encoding)
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t" if suffix == ".tsv" else ",")
        return [(reader.line_num, row) for row in reader]
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise MissingDependency("pyarrow", purpose="reading parquet files") from None
        table = pq.read_table(path)
        return [(n, row) for n, row in enumerate(table.to_pylist(), 1)]
    raise RoseError(f"{path}: unsupported file type {suffix!r}: use .jsonl, .csv, .tsv or .parquet")


def rows_to_data(
    rows: list[tuple[int, dict]],
    task: Task,
    *,
    text_field: str,
    label_field: str,
    where: str,
    name: str = "",
    strict_labels: bool = False,
) -> LabelledData:
    """Keep rows whose label belongs to the task; count the rest. Missing columns are an error."""
    texts, labels, dropped = [], [], Counter()
    allowed = set(task.labels)
    for n, row in rows:
        if text_field not in row or label_field not in row:
            missing = text_field if text_field not in row else label_field
            raise RoseError(
                f"{where}:{n}: no column {missing!r} (columns: {', '.join(map(str, row))}): "
                f"name your columns {text_field!r} and {label_field!r}"
            )
        text, label = row[text_field], row[label_field]
        text = "" if text is None else str(text).strip()
        label = "" if label is None else str(label).strip()
        if not text:
            dropped["empty text"] += 1
        elif label not in allowed:
            if strict_labels and label not in task.drop_labels:
                raise RoseError(
                    f"{where}:{n}: label {label!r} is not a label of task {task.name!r} "
                    f"({', '.join(task.labels)}): fix the label or choose the right --task"
                )
            dropped["label outside task"] += 1
        else:
            texts.append(text)
            labels.append(label)
    if dropped:
        log.info("%s: dropped %s", where, dict(dropped))
    return LabelledData(texts, labels, name=name, dropped=dropped)


def _folder_file(source: Path, task: Task, lang: Language, split: str) -> Path:
    for base in (source / task.dataset / lang.code, source / lang.code, source):
        for ext in (".jsonl", ".parquet", ".csv"):
            path = base / f"{split}{ext}"
            if path.exists():
                return path
    if task.name == "sentiment" and lang.sentiment_hub is None:
        raise RoseError(f"no human-labelled sentiment data exists for {lang.name}: choose another language or task")
    raise RoseError(
        f"no {split} split for {task.name}/{lang.code} under {source}: "
        f"expected {source / task.dataset / lang.code / (split + '.jsonl')}"
    )


def load_split(
    task: str | Task,
    language: str | Language,
    split: str = "train",
    source: str | Path = "../shared/data",
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    encoding: str = "utf-8",
) -> LabelledData:
    """Human-labelled data of one task, language and split from a folder, a file or the hub."""
    task = get_task(task) if isinstance(task, str) else task
    lang = get_language(language) if isinstance(language, str) else language
    if split not in SPLITS:
        raise RoseError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    name = f"human-{split}"
    source = resolve_source(source, task, lang)
    if str(source) in ("hub", "hf"):
        return _load_hub(task, lang, split, name)
    path = Path(source).expanduser()
    if path.is_dir():
        path = _folder_file(path, task, lang, split)
        text_field = text_column or task.text_field
        label_field = label_column or task.label_field
    else:
        text_field = text_column or "text"
        label_field = label_column or "label"
    rows = read_rows(path, encoding)
    if not rows:
        raise RoseError(f"{path}: the file is empty")
    return rows_to_data(rows, task, text_field=text_field, label_field=label_field, where=str(path), name=name)


def split_digest(task: str | Task, language: str | Language, split: str, source: str | Path) -> str:
    """A digest of a human split's content (the file's bytes): what decides whether cells computed on it are still
    current. A hub split is named, not downloaded (the hub ids of the catalog are taken as fixed)."""
    import hashlib

    task = get_task(task) if isinstance(task, str) else task
    lang = get_language(language) if isinstance(language, str) else language
    resolved = resolve_source(source, task, lang)
    if str(resolved) in ("hub", "hf"):
        blob = f"hub:{task.name}/{lang.code}/{split}".encode()
    else:
        path = Path(resolved).expanduser()
        path = _folder_file(path, task, lang, split) if path.is_dir() else path
        if not path.is_file():
            raise RoseError(f"no human data at {source}: pass a data folder, a file or hub")
        blob = path.read_bytes()
    return hashlib.sha256(blob).hexdigest()[:16]


BUNDLED = Path(__file__).parent / "resources"
SHARED_DATA = "../shared/data"


def _hub_reachable(timeout: float = 2.0) -> bool:
    import os
    import socket

    if os.environ.get("HF_HUB_OFFLINE") or os.environ.get("HF_DATASETS_OFFLINE"):
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def resolve_source(source: str | Path, task: Task, lang: Language) -> str | Path:
    """Make ``source`` concrete. ``auto`` means ``../shared/data`` when it is there, else the hub when it
    answers, else the small example set rose ships for the task (English topic sentences). A relative
    folder that does not exist from here is looked up from the project directory too."""
    from rose.tracking import project_dir

    text = str(source)
    if text == "auto":
        shared = project_dir() / SHARED_DATA
        if (shared / task.dataset / lang.code).is_dir():
            return shared
        if _hub_reachable():
            return "hub"
        if (BUNDLED / task.name / lang.code).is_dir():
            log.warning("no local data and no hub: using rose's own %s/%s examples", task.name, lang.code)
            return BUNDLED / task.name
        raise RoseError(
            f"no data for {task.name}/{lang.code}: ../shared/data is missing, the hub is unreachable and rose "
            "ships examples only for topic/en; pass --source with a folder or file"
        )
    path = Path(text).expanduser()
    if text not in ("hub", "hf") and not path.is_absolute() and not path.exists():
        candidate = project_dir() / path
        if candidate.exists():
            return candidate
    return source


def _load_hub(task: Task, lang: Language, split: str, name: str) -> LabelledData:
    try:
        import datasets
    except ImportError:
        raise MissingDependency("datasets", purpose="loading data from the Hugging Face hub") from None
    hub_split = {"dev": "validation"}.get(split, split)
    if task.dataset == "sib200":
        ds = datasets.load_dataset(task.hub_id, lang.sib200, split=hub_split)
        text_field, label_field = "text", "category"
    elif task.dataset == "massive":
        ds = datasets.load_dataset(task.hub_id, lang.massive, split=hub_split)
        names = ds.features["intent"].names
        ds = ds.map(lambda row: {"intent": names[row["intent"]]})
        text_field, label_field = "utt", "intent"
    else:
        if lang.sentiment_hub is None:
            raise RoseError(f"no hub sentiment dataset is known for {lang.name}: pass --source with your own file")
        ds = datasets.load_dataset(lang.sentiment_hub, split=hub_split)
        text_field, label_field = "text", "label"
        feature = ds.features.get("label")
        if hasattr(feature, "names"):
            names = feature.names
            ds = ds.map(lambda row: {"label": names[row["label"]]})
    rows = list(enumerate(ds, 1))
    where = f"hub:{task.hub_id or lang.sentiment_hub}"
    return rows_to_data(rows, task, text_field=text_field, label_field=label_field, where=where, name=name)


def cap_per_label(data: LabelledData, per_label: int | None, seed: int = 0) -> LabelledData:
    """At most ``per_label`` examples of each label, a seeded random choice in the original order."""
    if per_label is None:
        return data
    rng = random.Random(seed)
    keep: list[int] = []
    for _label, index in sorted(_index_by_label(data).items()):
        keep.extend(index if len(index) <= per_label else rng.sample(index, per_label))
    return data.subset(sorted(keep))


def _index_by_label(data: LabelledData) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(data.labels):
        out[label].append(i)
    return out


def stratified_split(data: LabelledData, dev_fraction: float = 0.1, seed: int = 0) -> tuple[LabelledData, LabelledData]:
    """Split into (train, dev) keeping label proportions; every label with 2+ examples gets 1+ dev example."""
    if not 0 < dev_fraction < 1:
        raise RoseError(f"dev fraction must be between 0 and 1, got {dev_fraction}")
    rng = random.Random(seed)
    train_idx, dev_idx = [], []
    for _label, index in sorted(_index_by_label(data).items()):
        index = index[:]
        rng.shuffle(index)
        n_dev = round(len(index) * dev_fraction)
        n_dev = min(max(n_dev, 1 if len(index) >= 2 else 0), len(index) - 1)
        dev_idx.extend(index[:n_dev])
        train_idx.extend(index[n_dev:])
    return data.subset(sorted(train_idx), data.name), data.subset(sorted(dev_idx), data.name + "-dev")


def truncate_words(text: str, max_words: int | None) -> str:
    if not max_words:
        return text
    words = text.split()
    return text if len(words) <= max_words else " ".join(words[:max_words])


def sample_demonstrations(
    data: LabelledData, labels: tuple[str, ...] | list[str], k: int = 10, seed: int = 0, max_words: int | None = 128
) -> dict[str, list[str]]:
    """k seeded demonstrations per label, each cut to ``max_words`` words (Anikina et al.: 10 per label, 128 words).

    A label with fewer than k examples gets all it has; a label with none gets an empty list (callers decide).
    """
    by_label = data.by_label()
    out = {}
    for label in labels:
        pool = by_label.get(label, [])
        rng = random.Random(f"{seed}:{label}")
        chosen = pool if len(pool) <= k else rng.sample(pool, k)
        out[label] = [truncate_words(t, max_words) for t in chosen]
    return out


def summary(task: str, language: str, source: str | Path) -> list[dict]:
    """Per-split, per-label counts (the rows of ``rose data summary``)."""
    t = get_task(task)
    rows = []
    for split in SPLITS:
        data = load_split(t, language, split, source)
        counts = data.counts()
        rows.append(
            {
                "split": split,
                "rows": len(data),
                **{lab: counts.get(lab, 0) for lab in t.labels},
                "dropped": sum(data.dropped.values()),
            }
        )
    return rows
