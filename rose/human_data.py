"""Loading human-labelled data, sampling demonstrations, per-label caps and stratified splits.

Sources a user can name (``--source``):
- a folder: the root under which the task file's ``human_data`` says the splits live (a layout such as
  ``sib200/{language}/{split}.jsonl``, the layout of ``../shared/data``, or one file per split);
- a single ``.jsonl``, ``.csv`` or ``.parquet`` file, with a column mapping for text and label;
- ``hub``: the task file's hub dataset (``Davlan/sib200`` with a config per language, ...), via ``datasets``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from rose.errors import MissingDependency, RoseError
from rose.languages import Language, get_language
from rose.locations import SHARED_DATA, project_dir
from rose.tasks import Task, get_task

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
    label_map: dict[str, str] | None = None,
) -> LabelledData:
    """Keep rows whose label (after ``label_map``) belongs to the task; count the rest.

    A missing column is an error; so is a label column of integers with no ``label_map`` (naming the column
    that holds the task's labels, when one does).
    """
    label_map = label_map or {}
    if rows and (text_field not in rows[0][1] or label_field not in rows[0][1]):
        raise RoseError(_missing_column(rows[0][1], rows[0][0], task, text_field, label_field, where))
    _check_label_column(rows, task, text_field, label_field, where, label_map)
    texts, labels, dropped = [], [], Counter()
    allowed = set(task.labels)
    for n, row in rows:
        if text_field not in row or label_field not in row:
            raise RoseError(_missing_column(row, n, task, text_field, label_field, where))
        text, label = row[text_field], row[label_field]
        text = "" if text is None else str(text).strip()
        label = map_label("" if label is None else str(label).strip(), label_map)
        if not text:
            dropped["empty text"] += 1
        elif label not in allowed:
            if strict_labels and label not in task.drop_labels:
                raise RoseError(
                    f"{where}:{n}: label {label!r} is not a label of task {task.name!r} "
                    f"({', '.join(task.labels)}): fix the label, map it (--label-map) or choose the right --task"
                )
            dropped["label outside task"] += 1
        else:
            texts.append(text)
            labels.append(label)
    if dropped:
        log.info("%s: dropped %s", where, dict(dropped))
    return LabelledData(texts, labels, name=name, dropped=dropped)


_INTEGER = re.compile(r"^-?\d+(\.0*)?$")


def map_label(label: str, label_map: dict[str, str]) -> str:
    """``label`` through ``label_map``; integer ids match whether written ``3`` or ``3.0``."""
    if not label_map:
        return label
    if label in label_map:
        return label_map[label]
    if _INTEGER.match(label):
        return label_map.get(label.split(".")[0], label)
    return label


def label_like_column(rows: list[tuple[int, dict]], task: Task, exclude: set[str]) -> str | None:
    """The column whose values are (mostly) labels of the task, if any: what ``--label-column`` should name."""
    sample = [row for _, row in rows[:200]]
    allowed = set(task.labels) | set(task.drop_labels)
    best, best_share = None, 0.0
    for column in dict.fromkeys(k for row in sample for k in row):
        if column in exclude:
            continue
        values = [str(row.get(column) or "").strip() for row in sample]
        share = sum(v in allowed for v in values) / max(1, len(values))
        if share > best_share:
            best, best_share = column, share
    return best if best_share >= 0.5 else None


def _check_label_column(
    rows: list[tuple[int, dict]], task: Task, text_field: str, label_field: str, where: str, label_map: dict
) -> None:
    if label_map:
        return
    values = {str(row[label_field]).strip() for _, row in rows[:500] if row.get(label_field) not in (None, "")}
    allowed = set(task.labels) | set(task.drop_labels)
    if not values or values & allowed or not all(_INTEGER.match(v) for v in values):
        return
    shown = ", ".join(sorted(values, key=lambda v: float(v))[:4]) + (", ..." if len(values) > 4 else "")
    hint = label_like_column(rows, task, {text_field, label_field})
    fix = (
        f"use --label-column {hint} (it holds the task's labels)"
        if hint
        else f"pass --label-map with the label of each id, e.g. 0={task.labels[0]},1={task.labels[1]},..."
    )
    raise RoseError(
        f"{where}: column {label_field!r} holds integers ({shown}), not labels of task {task.name!r}: {fix}"
    )


def _missing_column(row: dict, n: int, task: Task, text_field: str, label_field: str, where: str) -> str:
    missing = text_field if text_field not in row else label_field
    flag = "--text-column" if missing == text_field else "--label-column"
    hint = ""
    if missing == label_field:
        guess = label_like_column([(n, row)], task, {text_field})
        hint = f" (column {guess!r} holds the task's labels: --label-column {guess})" if guess else ""
    return f"{where}:{n}: no column {missing!r} (columns: {', '.join(map(str, row))}): pass {flag} to name yours{hint}"


def parse_label_map(spec: str | dict | None) -> dict[str, str]:
    """A label map from inline ``0=science/technology,1=travel``, a mapping, or a file.

    Files: ``.json`` (an object ``{"0": "travel"}`` or a list, where item i is the label of id i), ``.csv``/``.tsv``
    (rows ``key,label``, an optional header ``key,label``), or text (``key=label`` per line, or one label per line
    for ids 0, 1, ...).
    """
    if not spec:
        return {}
    if isinstance(spec, dict):
        return {str(k).strip(): str(v).strip() for k, v in spec.items()}
    text = str(spec).strip()
    path = Path(text).expanduser()
    if path.is_file() or "=" not in text:
        if not path.is_file():
            raise RoseError(f"label map {text!r}: no such file: pass a file (.json, .csv, .txt) or 0=label,1=label")
        return _read_label_map(path)
    return _pairs(text.split(","), f"label map {text!r}")


def _pairs(items: list[str], where: str) -> dict[str, str]:
    out = {}
    for item in items:
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise RoseError(f"{where}: {item.strip()!r} is not KEY=LABEL: write e.g. 0=science/technology,1=travel")
        out[key.strip()] = value.strip()
    return out


def _read_label_map(path: Path) -> dict[str, str]:
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RoseError(f"{path}: not valid JSON ({exc.msg})") from None
        if isinstance(data, list):
            return {str(i): str(v) for i, v in enumerate(data)}
        if isinstance(data, dict):
            return parse_label_map(data)
        raise RoseError(f"{path}: a label map is a JSON object (id -> label) or a list of labels")
    if suffix in (".csv", ".tsv"):
        rows = [r for r in csv.reader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ",") if r]
        if rows and [c.strip().lower() for c in rows[0][:2]] in (["key", "label"], ["id", "label"]):
            rows = rows[1:]
        bad = [i for i, r in enumerate(rows, 1) if len(r) < 2]
        if bad:
            raise RoseError(f"{path}:{bad[0]}: expected two columns, key and label")
        return {r[0].strip(): r[1].strip() for r in rows}
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if all("=" in line for line in lines):
        return _pairs(lines, str(path))
    return {str(i): line for i, line in enumerate(lines)}


def check_label_map(label_map: dict[str, str], task: Task, where: str = "label map") -> None:
    """Every label a map produces must be a label of the task (or one the task drops)."""
    bad = sorted({v for v in label_map.values() if v not in task.labels and v not in task.drop_labels})
    if bad:
        raise RoseError(
            f"{where}: {', '.join(map(repr, bad))} not a label of task {task.name!r} ({', '.join(task.labels)}): "
            "fix the map"
        )


def _folder_file(source: Path, task: Task, lang: Language, split: str) -> Path:
    """The file of a human split under the ``source`` root, where the task file's ``human_data`` says it is."""
    path = task.human_path(source, lang.code, split)
    if not path.is_file():
        raise RoseError(f"no human {split} data of task {task.name!r} in {lang.name} ({lang.code}): no file {path}")
    return path


def default_columns(task: Task, row: dict, text_column: str | None, label_column: str | None) -> tuple[str, str]:
    """(text, label) columns of a file: the flags', else the task's when the file has them, else text/label."""
    text = text_column or (task.text_field if task.text_field in row else "text")
    label = label_column or (task.label_field if task.label_field in row else "label")
    return text, label


def load_split(
    task: str | Task,
    language: str | Language,
    split: str = "train",
    source: str | Path = SHARED_DATA,
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    label_map: str | dict | None = None,
    encoding: str = "utf-8",
) -> LabelledData:
    """Human-labelled data of one task, language and split from a folder, a file or the hub.

    ``text_column``/``label_column`` name the columns of a file (default ``text``/``label``) and ``label_map``
    maps its label values (ids) to the task's labels (see :func:`parse_label_map`)."""
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
    rows = read_rows(path, encoding)
    if not rows:
        raise RoseError(f"{path}: the file is empty")
    text_field, label_field = default_columns(task, rows[0][1], text_column, label_column)
    mapping = parse_label_map(label_map) or task.label_map
    check_label_map(mapping, task)
    return rows_to_data(
        rows, task, text_field=text_field, label_field=label_field, where=str(path), name=name, label_map=mapping
    )


def columns(config: object) -> dict:
    """How a stage config reads dataset files (``text_column``, ``label_column``, ``label_map``, ``encoding``) as
    keyword arguments of :func:`load_split` and :func:`rose.generated_data.load_ref`; empty values mean defaults."""
    return {
        "text_column": getattr(config, "text_column", "") or None,
        "label_column": getattr(config, "label_column", "") or None,
        "label_map": getattr(config, "label_map", "") or None,
        "encoding": getattr(config, "encoding", "") or "utf-8",
    }


def split_digest(task: str | Task, language: str | Language, split: str, source: str | Path) -> str:
    """A digest of a human split's content (the file's bytes): what decides whether cells computed on it are still
    current. A hub split is named, not downloaded (the task file's hub ids are taken as fixed)."""
    import hashlib

    from rose.content import sha256_hex

    task = get_task(task) if isinstance(task, str) else task
    lang = get_language(language) if isinstance(language, str) else language
    resolved = resolve_source(source, task, lang)
    if str(resolved) in ("hub", "hf"):
        try:
            hub_id, config = task.hub(lang.code)
            blob = f"hub:{hub_id}/{config}/{split}".encode()
        except RoseError:  # no hub dataset for the language: the run that reads it says so
            blob = f"hub:{task.name}/{lang.code}/{split}".encode()
    else:
        path = Path(resolved).expanduser()
        path = _folder_file(path, task, lang, split) if path.is_dir() else path
        if not path.is_file():
            raise RoseError(f"no human data at {source}: pass a data folder, a file or hub")
        return sha256_hex(path)[:16]  # rose's one sha256 cache: read once per process while unchanged
    return hashlib.sha256(blob).hexdigest()[:16]


BUNDLED = Path(__file__).parent / "resources"


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
    """Make ``source`` concrete. ``auto`` means ``../shared/data`` when the task's train split is there, else
    the task's hub dataset when the hub answers, else the small example set rose ships (English topic
    sentences). A relative folder that does not exist from here is looked up from the project directory too."""

    text = str(source)
    if text == "auto":
        shared = project_dir() / SHARED_DATA
        if _has_split(task, shared, lang):
            return shared
        if task.human_data.get("hub") and _hub_reachable():
            return "hub"
        if _has_split(task, BUNDLED, lang):
            log.warning("no local data and no hub: using rose's own %s/%s examples", task.name, lang.code)
            return BUNDLED
        raise RoseError(
            f"no data for {task.name}/{lang.code}: ../shared/data does not hold it, no hub dataset answers and rose "
            "ships examples only for topic/en; pass --source with a folder or file"
        )
    path = Path(text).expanduser()
    if text not in ("hub", "hf") and not path.is_absolute() and not path.exists():
        candidate = project_dir() / path
        if candidate.exists():
            return candidate
    return source


def _has_split(task: Task, root: Path, lang: Language) -> bool:
    try:
        return task.human_path(root, lang.code, "train").is_file()
    except RoseError:
        return False


def _load_hub(task: Task, lang: Language, split: str, name: str) -> LabelledData:
    try:
        import datasets
    except ImportError:
        raise MissingDependency("datasets", purpose="loading data from the Hugging Face hub") from None
    hub_id, config = task.hub(lang.code)
    hub = task.human_data["hub"]
    hub_split = hub.get("splits", {}).get(split, split)
    ds = datasets.load_dataset(hub_id, config, split=hub_split)
    text_field = hub.get("text_column", task.text_field)
    label_field = hub.get("label_column", task.label_field)
    feature = ds.features.get(label_field)
    if hasattr(feature, "names"):  # a ClassLabel: ids -> names
        names = feature.names
        ds = ds.map(lambda row: {label_field: names[row[label_field]]})
    rows = list(enumerate(ds, 1))
    where = f"hub:{hub_id}" + (f"/{config}" if config else "")
    return rows_to_data(
        rows, task, text_field=text_field, label_field=label_field, where=where, name=name, label_map=task.label_map
    )


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


def summary(task: str | Task, language: str | Language, source: str | Path) -> list[dict]:
    """Per-split, per-label counts (the rows of ``rose data summary``)."""
    t = get_task(task)
    rows = []
    files = t.human_data.get("files")
    for split in SPLITS:
        if files and split not in files and Path(str(source)).expanduser().is_dir():
            continue  # the task names no file for this split
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
