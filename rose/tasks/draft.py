"""``rose task init``: a task file drafted from a labelled file (labels and counts read from the data), and
``rose task check``: what a task file says, checked.

The draft is a valid task file: its labels are the label column's values (through ``--label-map``), in the map's
order or sorted, each with its count in a comment and an empty description to fill in (or written by a model with
the summary step of generation: ``--describe-with MODEL``). Its human data is the file itself (``files: {train:
...}``, relative to ``--source`` when under it), plus ``--test`` when given.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rose.errors import RoseError
from rose.human_data import map_label, parse_label_map, read_rows
from rose.naming import slug
from rose.tasks import Task, from_dict, get_task

log = logging.getLogger(__name__)

_INTEGER = re.compile(r"^-?\d+(\.0*)?$")


@dataclass
class Draft:
    task: Task
    counts: Counter
    text: str  # the task file, with the counts as comments


def draft(
    data: str | Path,
    label_column: str,
    *,
    text_column: str = "text",
    label_map: str | dict | None = None,
    name: str = "",
    description: str = "",
    noun: str = "text",
    plural: str = "",
    source: str | Path = "",
    test: str | Path = "",
    descriptions: dict[str, str] | None = None,
) -> Draft:
    """A task drafted from the labelled file ``data``; a one-line error when its columns or labels do not fit."""
    path = Path(data).expanduser()
    rows = read_rows(path)
    if not rows:
        raise RoseError(f"{path}: the file is empty: a task is drafted from labelled examples")
    first = rows[0][1]
    for column, flag in ((text_column, "--text-column"), (label_column, "--label-column")):
        if column not in first:
            raise RoseError(f"{path}: no column {column!r} (columns: {', '.join(map(str, first))}): pass {flag}")
    mapping = parse_label_map(label_map)
    counts: Counter = Counter()
    for _, row in rows:
        value = "" if row.get(label_column) is None else str(row[label_column]).strip()
        text = "" if row.get(text_column) is None else str(row[text_column]).strip()
        if value and text:
            counts[map_label(value, mapping)] += 1
    unmapped = sorted(v for v in counts if _INTEGER.match(v))
    if unmapped and not mapping:
        raise RoseError(
            f"{path}: column {label_column!r} holds integer ids ({', '.join(unmapped[:4])}{', ...' if len(unmapped) > 4 else ''}), "
            "not label names: pass --label-map with a name for each id, e.g. 0=abbreviation,1=aircraft"
        )
    if unmapped:
        raise RoseError(f"{path}: --label-map names no label for id(s) {', '.join(unmapped)}: add them to the map")
    order = list(dict.fromkeys(v for v in mapping.values() if v in counts)) or sorted(counts)
    order += sorted(v for v in counts if v not in order)
    name = name or slug(path.stem).replace(".", "_")
    human = {"files": {"train": _relative(path, source)}}
    if test:
        human["files"]["test"] = _relative(Path(test).expanduser(), source)
    labels = [{"name": label, **({"description": descriptions[label]} if descriptions and descriptions.get(label)
                                 else {})} for label in order]  # fmt: skip
    content = {
        "name": name,
        "description": description or f"{plural or noun + 's'} of {name}, classified by {label_column}",
        "example_noun": noun,
        "example_plural": plural,
        "text_column": text_column,
        "label_column": label_column,
        "label_map": mapping,
        "labels": labels,
        "human_data": human,
    }
    task = from_dict(content, str(path))
    return Draft(task, counts, render(task, counts, path.name))


def _relative(path: Path, source: str | Path) -> str:
    """``path`` relative to the ``source`` root when it lies under it (task files name human data under
    ``--source``), else absolute."""
    if source:
        try:
            return path.resolve().relative_to(Path(source).expanduser().resolve()).as_posix()
        except ValueError:
            pass
    return str(path.resolve())


def _scalar(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML string


def render(task: Task, counts: Counter, where: str) -> str:
    """The task file's text: its content with each label's count in ``where`` as a comment, and a line to fill in
    for each label without a description."""
    d = task.to_dict()
    out = [f"# drafted by `rose task init` from {where}: fill in the descriptions, then `rose task check` this file",
           f"name: {d['name']}", f"description: {_scalar(d['description'])}",
           f"example_noun: {_scalar(d['example_noun'])}", f"example_plural: {_scalar(d['example_plural'])}",
           f"text_column: {_scalar(d['text_column'])}", f"label_column: {_scalar(d['label_column'])}"]  # fmt: skip
    if d["label_map"]:
        out.append("label_map:")
        out += [f"  {_scalar(k)}: {_scalar(v)}" for k, v in d["label_map"].items()]
    out.append("labels:")
    for label in d["labels"]:
        out.append(f"  - name: {_scalar(label['name'])}  # {counts.get(label['name'], 0)} examples in {where}")
        if label.get("description"):
            out.append(f"    description: {_scalar(label['description'])}")
        else:
            out.append('    description: ""  # what a text of this label is about, in a sentence')
    out.append("human_data:")
    out.append("  files:")
    out += [f"    {split}: {_scalar(file)}" for split, file in d["human_data"]["files"].items()]
    text = "\n".join(out) + "\n"
    check = from_dict(__import__("yaml").safe_load(text), "draft")
    if check.digest != task.digest:  # the comments never change what the file says
        raise RuntimeError("the rendered task file does not round-trip")
    return text


def describe(task: Task, data: str | Path, model: str, backend: str, examples: int = 10, seed: int = 0) -> dict:
    """Label descriptions written by ``model`` from ``examples`` of each label (the summary step of generation)."""
    from rose.generate.backends import get_backend
    from rose.generate.cache import CompletionCache
    from rose.generate.config import GenerateConfig
    from rose.generate.run import make_context
    from rose.generate.steps import LabelDescriptions, State
    from rose.generate.strategies import get_strategy
    from rose.locations import project_dir

    config = GenerateConfig(task=task.path, language="en", generator=model, strategy="sl", backend=backend,
                            source=str(data), summary_examples=examples, seed=seed)  # fmt: skip
    used = get_backend(backend, config)
    cache = CompletionCache(project_dir() / ".rose" / "cache" / "completions.sqlite")
    try:
        ctx = make_context(config, used, cache, get_strategy("sl"))
        state = LabelDescriptions(examples=examples)(State(labels=list(task.labels)), ctx)
    finally:
        cache.close()
        used.close()
    return state.descriptions


def check(path: str | Path, source: str | Path = "") -> list[str]:
    """What a task file says, as lines; a RoseError when it is not a valid task file or (with ``source``) its human
    data files are missing."""
    task = get_task(str(path))
    lines = [
        f"task {task.name} (digest {task.digest}): {len(task.labels)} labels: {', '.join(task.labels)}",
        f"a text is a {task.example_noun} (plural: {task.plural}): {task.description}",
    ]
    missing = [lab.name for lab in task.label_info if not lab.description]
    if missing:
        lines.append(f"no description for {len(missing)} label(s): {', '.join(missing)} (prompts state the name only)")
    files = task.human_data.get("files") or {}
    if "layout" in task.human_data:
        lines.append(f"human data: {task.human_data['layout']} under --source")
    for split, file in files.items():
        where = Path(file) if Path(file).is_absolute() or not source else Path(source).expanduser() / file
        if source and not where.is_file():
            raise RoseError(f"{path}: human {split} file {where} does not exist: fix human_data.files.{split}")
        lines.append(f"human {split}: {where}")
    if "hub" in task.human_data:
        lines.append(f"hub: {task.human_data['hub']['id']}")
    return lines
