"""Tasks as data: a task is a YAML file (the built-in ``topic``, ``intent``, ``intent_all`` and ``sentiment`` ship as
files in this folder and load through the same code).

A task file::

    name: atis                          # [A-Za-z0-9_.-]+
    description: questions airline passengers ask a flight information system, classified by intent
    example_noun: question              # what one text is called in prompts
    example_plural: questions           # optional (default: noun + "s")
    text_column: text                   # columns of human data and imported files (default text / label)
    label_column: label
    label_map: {0: abbreviation, 1: aircraft}   # optional: source value -> label
    drop_labels: [neutral]              # source labels silently outside the task
    labels:
      - name: abbreviation
        display: abbreviation           # optional: the name prompts use (default: the name)
        description: asking what an abbreviation or code means    # optional
      - aircraft                        # a bare name is a label with no display name or description
    human_data:                         # optional: a layout or files (under --source), and/or a hub dataset
      layout: "sib200/{language}/{split}.jsonl"       # under --source (or absolute)
      # files: {train: multigen/atis/atis_train.csv, test: multigen/atis/atis_test.csv}
      # hub: {id: Davlan/sib200, config: {cy: cym_Latn}, splits: {dev: validation}, label_column: category}

Identity (docs/CONTRACTS.md, "Identities", rule 2): ``task.digest`` covers the canonical content (never the
file's path); every run carries ``rose.task``, ``rose.task_digest`` and the artifact ``task.yaml``
(:func:`log_task`), and later stages rebuild the task from the run (:func:`from_run`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from rose.errors import RoseError

log = logging.getLogger(__name__)

BUILTIN_DIR = Path(__file__).parent
BUILTIN = ("topic", "intent", "intent_all", "sentiment")
ARTIFACT = "task.yaml"
SPLITS = ("train", "dev", "test")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_KEYS = ("name", "description", "example_noun", "example_plural", "text_column", "label_column", "label_map",
         "drop_labels", "labels", "human_data")  # fmt: skip
_LABEL_KEYS = ("name", "display", "description")
_HUMAN_KEYS = ("layout", "files", "hub")
_HUB_KEYS = ("id", "config", "splits", "text_column", "label_column")


@dataclass(frozen=True)
class Label:
    name: str
    display: str = ""  # the name prompts use ("" = the name)
    description: str = ""  # what the label means, in the pivot language ("" = none given)


@dataclass(frozen=True)
class Task:
    name: str
    description: str  # what a text of this task is, used in prompts
    label_info: tuple[Label, ...]
    example_noun: str = "text"
    example_plural: str = ""
    text_field: str = "text"
    label_field: str = "label"
    label_map: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    drop_labels: tuple[str, ...] = ()
    human_data: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    path: str = field(default="", hash=False, compare=False)  # where it was read from (in no digest)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(lab.name for lab in self.label_info)

    @property
    def plural(self) -> str:
        return self.example_plural or f"{self.example_noun}s"

    def label(self, name: str) -> Label:
        for lab in self.label_info:
            if lab.name == name:
                return lab
        raise RoseError(f"label {name!r} is not a label of task {self.name!r}: use one of {', '.join(self.labels)}")

    def display(self, name: str) -> str:
        """The name prompts use for a label."""
        return self.label(name).display or name

    def description_of(self, name: str) -> str:
        """The task file's description of a label ("" when it gives none)."""
        return self.label(name).description

    def to_dict(self) -> dict[str, Any]:
        """The canonical content (what :attr:`digest` covers and ``task.yaml`` holds)."""
        labels = [{k: v for k, v in vars(lab).items() if v or k == "name"} for lab in self.label_info]
        return {
            "name": self.name,
            "description": self.description,
            "example_noun": self.example_noun,
            "example_plural": self.plural,
            "text_column": self.text_field,
            "label_column": self.label_field,
            "label_map": dict(self.label_map),
            "drop_labels": list(self.drop_labels),
            "labels": labels,
            "human_data": self.human_data,
        }

    @cached_property
    def digest(self) -> str:
        from rose.tracking import digest

        return digest(self.to_dict())

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=120)

    # --- where the human data lives ---------------------------------------------------------------------------
    def human_path(self, source: str | Path, language: str, split: str) -> Path:
        """The file of a human split under the ``source`` root (a layout or a file per split)."""
        where = self.human_data
        if "layout" in where:
            rel = where["layout"].format(language=language, split=split)
        elif "files" in where:
            if split not in where["files"]:
                raise RoseError(
                    f"task {self.name!r} names no human {split} file (human_data.files has "
                    f"{', '.join(where['files'])}): add one to the task file or pass --source with a file"
                )
            rel = where["files"][split]
        elif "hub" in where:
            raise RoseError(f"task {self.name!r} keeps its human data on the hub: pass --source hub or a file")
        else:
            raise RoseError(
                f"task {self.name!r} says nothing about where its human data lives (human_data in the task file): "
                "pass --source with a file"
            )
        path = Path(rel).expanduser()
        return path if path.is_absolute() else Path(source).expanduser() / path

    def hub(self, language: str) -> tuple[str, str | None]:
        """(hub id, config) of the task's human data in ``language``; a one-line error when none is known."""
        hub = self.human_data.get("hub")
        if not hub:
            raise RoseError(f"task {self.name!r} names no hub dataset: pass --source with a folder or file")
        ids, configs = hub["id"], hub.get("config")
        hub_id = ids.get(language) if isinstance(ids, dict) else ids
        config = configs.get(language) if isinstance(configs, dict) else configs
        if not hub_id or (isinstance(configs, dict) and not config):
            raise RoseError(f"no hub dataset of task {self.name!r} is known for language {language!r}: "
                            "pass --source with your own file")  # fmt: skip
        return hub_id, (config.format(language=language) if isinstance(config, str) else config)


def _where(where: str, lines: dict, *at: Any) -> str:
    for n in range(len(at), -1, -1):
        if at[:n] in lines:
            return f"{where}:{lines[at[:n]]}"
    return where


def from_dict(data: Any, where: str = "task", lines: dict | None = None, path: str = "") -> Task:
    """A task from its mapping (a task file's content, or a study's inline task); one-line errors."""
    lines = lines or {}

    def fail(msg: str, *at: Any) -> RoseError:
        return RoseError(f"{_where(where, lines, *at)}: {msg}")

    if not isinstance(data, dict):
        raise fail("a task is a mapping with at least name, description and labels")
    unknown = [k for k in data if k not in _KEYS]
    if unknown:
        raise fail(f"unknown key {unknown[0]!r} (known: {', '.join(_KEYS)})", unknown[0])
    for key in ("name", "description", "labels"):
        if not data.get(key):
            raise fail(f"missing {key!r}: a task needs a name, a description and labels")
    name = _text(data["name"], fail, "name")
    if not _NAME.match(name):
        raise fail(f"name {name!r}: use letters, digits, '_', '-' and '.' only", "name")
    strings = {k: _text(data.get(k, default), fail, k) for k, default in
               (("description", ""), ("example_noun", "text"), ("example_plural", ""), ("text_column", "text"),
                ("label_column", "label"))}  # fmt: skip
    labels = _labels(data["labels"], fail)
    names = [lab.name for lab in labels]
    drop = data.get("drop_labels") or []
    if not isinstance(drop, list):
        raise fail("drop_labels is a list of label values", "drop_labels")
    drop = tuple(str(v) for v in drop)
    if clash := sorted(set(drop) & set(names)):
        raise fail(f"{clash[0]!r} is both a label and a dropped label", "drop_labels")
    label_map = data.get("label_map") or {}
    if not isinstance(label_map, dict):
        raise fail("label_map is a mapping from source values to labels, e.g. {0: travel}", "label_map")
    label_map = {str(k).strip(): str(v).strip() for k, v in label_map.items()}
    bad = sorted({v for v in label_map.values() if v not in names and v not in drop})
    if bad:
        raise fail(f"label_map gives {bad[0]!r}, not a label of the task (labels: {', '.join(names)})", "label_map")
    human = _human_data(data.get("human_data"), fail)
    return Task(
        name,
        strings["description"],
        tuple(labels),
        strings["example_noun"] or "text",
        strings["example_plural"],
        strings["text_column"] or "text",
        strings["label_column"] or "label",
        label_map,
        drop,
        human,
        path,
    )


def _text(value: Any, fail, *at: Any) -> str:
    if isinstance(value, (dict, list)):
        raise fail(f"{at[-1]} must be text, not a {type(value).__name__}", *at)
    return "" if value is None else str(value).strip()


def _labels(raw: Any, fail) -> list[Label]:
    if not isinstance(raw, list):
        raise fail("labels is a list: one name per item, or name/display/description mappings", "labels")
    out, seen = [], set()
    for i, item in enumerate(raw):
        if isinstance(item, dict):
            unknown = [k for k in item if k not in _LABEL_KEYS]
            if unknown:
                raise fail(f"label key {unknown[0]!r} unknown (known: {', '.join(_LABEL_KEYS)})", "labels", i)
            values = {k: _text(item.get(k, ""), fail, "labels", i) for k in _LABEL_KEYS}
        else:
            values = {"name": _text(item, fail, "labels", i), "display": "", "description": ""}
        if not values["name"]:
            raise fail("a label without a name", "labels", i)
        if values["name"] in seen:
            raise fail(f"label {values['name']!r} appears twice", "labels", i)
        seen.add(values["name"])
        out.append(Label(values["name"], values["display"], values["description"]))
    if len(out) < 2:
        raise fail("a classification task needs at least two labels", "labels")
    return out


def _human_data(raw: Any, fail) -> dict[str, Any]:
    if not raw:
        return {}
    if not isinstance(raw, dict):
        raise fail("human_data is a mapping with a layout or files, and/or a hub", "human_data")
    unknown = [k for k in raw if k not in _HUMAN_KEYS]
    if unknown:
        raise fail(f"human_data key {unknown[0]!r} unknown (known: {', '.join(_HUMAN_KEYS)})", "human_data")
    if "layout" in raw and "files" in raw:
        raise fail("human_data has a layout or files, not both", "human_data")
    out = {"hub": _hub(raw["hub"], fail)} if "hub" in raw else {}
    if "layout" in raw:
        layout = _text(raw["layout"], fail, "human_data", "layout")
        if "{split}" not in layout:
            raise fail("human_data.layout needs a {split} placeholder, e.g. mydata/{language}/{split}.jsonl",
                       "human_data", "layout")  # fmt: skip
        try:
            layout.format(language="x", split="x")
        except (KeyError, IndexError, ValueError):
            raise fail("human_data.layout may use only the placeholders {language} and {split}",
                       "human_data", "layout") from None  # fmt: skip
        return {"layout": layout, **out}
    if "files" in raw:
        files = raw["files"]
        if not isinstance(files, dict) or not files:
            raise fail("human_data.files maps splits to files, e.g. {train: a.csv, test: b.csv}", "human_data")
        bad = [s for s in files if s not in SPLITS]
        if bad:
            raise fail(f"human_data.files: unknown split {bad[0]!r} (use {', '.join(SPLITS)})", "human_data", "files")
        return {"files": {str(k): _text(v, fail, "human_data", "files", k) for k, v in files.items()}, **out}
    return out


def _hub(hub: Any, fail) -> dict[str, Any]:
    if not isinstance(hub, dict) or not hub.get("id"):
        raise fail("human_data.hub needs an id (a hub id, or a mapping language -> hub id)", "human_data", "hub")
    unknown = [k for k in hub if k not in _HUB_KEYS]
    if unknown:
        raise fail(f"human_data.hub key {unknown[0]!r} unknown (known: {', '.join(_HUB_KEYS)})", "human_data", "hub")
    splits = hub.get("splits") or {}
    if not isinstance(splits, dict) or any(s not in SPLITS for s in splits):
        raise fail(f"human_data.hub.splits maps rose's splits ({', '.join(SPLITS)}) to the hub's", "human_data", "hub")
    return {k: v for k, v in hub.items() if v not in (None, "", {})}


# --- loading ------------------------------------------------------------------------------------------------------
_LOADED: dict[tuple, Task] = {}
_BY_DIGEST: dict[str, Task] = {}


def load_task(path: str | Path) -> Task:
    """A task from a YAML file (cached per file content); one-line errors with the line."""
    from rose.config import read_yaml

    path = Path(path).expanduser()
    if not path.is_file():
        raise RoseError(f"no task file at {path}: check the path, or use a built-in task ({', '.join(BUILTIN)})")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _LOADED:
        data, lines = read_yaml(path, "task file")
        _LOADED[key] = remember(from_dict(data, str(path), lines, str(path)))
    return _LOADED[key]


def remember(task: Task) -> Task:
    """Keep ``task`` by digest, so a run started in this process can log it (:func:`log_task`)."""
    _BY_DIGEST.setdefault(task.digest, task)
    return task


def by_digest(digest: str) -> Task | None:
    return _BY_DIGEST.get(digest)


def is_task_file(value: str) -> bool:
    return value.endswith((".yaml", ".yml")) or "/" in value or "\\" in value


def get_task(task: str | Task) -> Task:
    """A built-in task by name, or a task file by path; a :class:`Task` is returned as is."""
    if isinstance(task, Task):
        return remember(task)
    text = str(task).strip()
    if text in BUILTIN:
        return load_task(BUILTIN_DIR / f"{text}.yaml")
    if is_task_file(text) or Path(text).expanduser().is_file():
        return load_task(text)
    raise RoseError(f"unknown task {text!r}: choose one of {', '.join(BUILTIN)}, or pass a task file (.yaml)")


def known_task(name: str) -> str | None:
    """A config ``check``: a built-in task or a valid task file (the problem, or None)."""
    try:
        get_task(name)
    except RoseError as exc:
        return str(exc)
    return None


def tracked_task(value: str) -> str | None:
    """A config ``check`` of a task named in a query over tracked runs: a task file (valid) or any task's name."""
    if value in BUILTIN or _NAME.match(value) and not is_task_file(value) and not Path(value).is_file():
        return None
    return known_task(value)


def builtin_tasks() -> dict[str, Task]:
    return {name: get_task(name) for name in BUILTIN}


def check_label(task: Task, label: str) -> str:
    task.label(label)
    return label


def label_description(task: Task, label: str) -> str:
    """The task file's description of ``label`` ("" when it gives none)."""
    return task.description_of(label)


# --- the task travels with its runs -------------------------------------------------------------------------------
def from_run(run: Any) -> Task:
    """The task a run was made for: its ``task.yaml`` (cached by ``rose.task_digest``), else (a run from before tasks
    travelled) the built-in task of its ``rose.task`` tag."""
    tags = run.data.tags
    digest = tags.get("rose.task_digest", "")
    if digest and (known := by_digest(digest)):
        return known
    if digest:
        import mlflow
        import yaml

        try:
            text = mlflow.artifacts.load_text(f"{run.info.artifact_uri.rstrip('/')}/{ARTIFACT}")
        except Exception:  # noqa: BLE001 - an artifact store that lost the file: say so below
            text = None
        if text is not None:
            task = from_dict(yaml.safe_load(text), f"run {run.info.run_id} {ARTIFACT}")
            if task.digest != digest:
                raise RoseError(f"run {run.info.run_id}: its {ARTIFACT} does not match its rose.task_digest")
            return remember(task)
    name = tags.get("rose.task", "")
    if name in BUILTIN and (not digest or get_task(name).digest == digest):
        return get_task(name)
    raise RoseError(f"run {run.info.run_id} has no {ARTIFACT} for task {name!r}: it cannot be rebuilt")


def same_task(runs: list, what: str = "runs") -> None:
    """Refuse (one line) ``runs`` that carry one task name with different contents."""
    seen: dict[str, dict[str, str]] = {}
    for run in runs:
        tags = run.data.tags
        seen.setdefault(tags.get("rose.task", ""), {}).setdefault(tags.get("rose.task_digest", ""), run.info.run_id)
    for name, digests in seen.items():
        digests.pop("", None)
        if len(digests) > 1:
            (d1, r1), (d2, r2) = list(digests.items())[:2]
            raise RoseError(
                f"{what} mix two different tasks named {name!r} (task digest {d1[:8]} in run {r1}, {d2[:8]} in run "
                f"{r2}): pass the task file to score (--task FILE), rename one task, or use another --experiment"
            )
