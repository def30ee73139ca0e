"""Where a stage finds its data: a generate run, a dataset file, or human data (``human:<source>``).

A generated dataset is a list of examples, one JSON object per line, with at least ``text`` and
``label`` and the provenance fields in :data:`EXAMPLE_FIELDS`. A generate run stores it under the
artifact folder :data:`ARTIFACT_DIR` as ``data.jsonl`` and ``data.parquet``, beside ``rejected.jsonl``,
``demonstrations.json``, ``label_descriptions.csv`` and ``prompts.jsonl``.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

from rose.errors import RoseError
from rose.human_data import (
    LabelledData,
    check_label_map,
    default_columns,
    load_split,
    parse_label_map,
    read_rows,
    rows_to_data,
)
from rose.locations import SHARED_DATA
from rose.naming import metric_key
from rose.tasks import Task, get_task

ARTIFACT_DIR = "dataset"
DATA_FILE = "data.jsonl"
PARQUET_FILE = "data.parquet"
REJECTED_FILE = "rejected.jsonl"
DEMOS_FILE = "demonstrations.json"
DESCRIPTIONS_FILE = "label_descriptions.csv"
PROMPTS_FILE = "prompts.jsonl"
HUMAN_PREFIX = "human:"
HUMAN_NAME = "human"

EXAMPLE_FIELDS = (
    "text", "label", "task", "language", "generator", "strategy", "candidate", "step", "prompt_hash",
    "request_index", "verdict", "explanation",
)  # fmt: skip

_RUN_ID = re.compile(r"^(runs:/)?[0-9a-f]{32}$")


def write_jsonl(rows: list[dict[str, Any]], path: Path) -> Path:
    """Write rows atomically (temp file, then rename), so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def write_parquet(rows: list[dict[str, Any]], path: Path) -> Path:
    """The dataset as parquet, with the columns of :data:`EXAMPLE_FIELDS`."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=list(EXAMPLE_FIELDS)).astype({"verdict": "object"})
    tmp = path.with_suffix(path.suffix + ".tmp")
    frame.to_parquet(tmp)
    os.replace(tmp, path)
    return path


def log_input(path: Path, name: str, context: str = "generated") -> None:
    """Log a dataset file (jsonl) as the active run's MLflow dataset input, targets ``label``."""
    import mlflow
    import pandas as pd

    frame = (
        pd.read_json(path, lines=True, dtype=False)
        if path.stat().st_size
        else pd.DataFrame(columns=list(EXAMPLE_FIELDS))
    )
    with warnings.catch_warnings():  # mlflow's notes on integer columns and ambiguous local sources
        warnings.simplefilter("ignore")
        dataset = mlflow.data.from_pandas(frame, source=str(path), name=name, targets="label")
        mlflow.log_input(dataset, context=context)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with Path(path).open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise RoseError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
    return rows


def human_source(ref: str) -> str:
    """The data folder or file of a ``human:<source>`` reference (``human:`` alone: the shared data folder)."""
    return ref.strip()[len(HUMAN_PREFIX) :] or SHARED_DATA


def reused_dataset(run, labels) -> tuple[Path, dict[str, dict[str, int]]]:
    """What a finished generate or import run that is reused gives back: its dataset (downloaded) and its counts
    per label, ``{"kept": {label: n}, "shortfall": {label: n}}`` from its ``kept/<label>`` and
    ``shortfall/<label>`` metrics (0 where absent)."""
    m = run.data.metrics
    counts = {name: {lab: int(m.get(metric_key(name, label=lab), 0)) for lab in labels}
              for name in ("kept", "shortfall")}  # fmt: skip
    return download_dataset(run.info.run_id), counts


def is_run_id(ref: str) -> bool:
    return bool(_RUN_ID.match(ref.strip()))


def download_dataset(run_id: str) -> Path:
    """Download a generate run's dataset folder and return the local ``data.jsonl``."""
    import mlflow

    run_id = run_id.removeprefix("runs:/")
    try:
        local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=ARTIFACT_DIR)
    except Exception as exc:  # MlflowException, OSError: the message is what matters
        raise RoseError(f"cannot read the dataset of run {run_id}: {str(exc).splitlines()[0]}") from None
    path = Path(local) / DATA_FILE
    if not path.exists():
        raise RoseError(f"run {run_id} has no {ARTIFACT_DIR}/{DATA_FILE}: is it a finished rose generate run?")
    return path


def run_name_of(run_id: str, task: Task | None = None) -> str:
    """The candidate name a generate run carries (``rose.candidate``), else its run id; with ``task``, a run made for
    another task of the same name (another ``rose.task_digest``) is refused in one line."""
    import mlflow

    run = mlflow.MlflowClient().get_run(run_id.removeprefix("runs:/"))
    tags = run.data.tags
    if task is not None and tags.get("rose.task_digest", task.digest) != task.digest:
        raise RoseError(
            f"run {run.info.run_id} was made for task {tags.get('rose.task')!r} with other contents (task digest "
            f"{tags['rose.task_digest'][:8]}, not {task.digest[:8]}): pass the task file it was made with (its "
            "task.yaml artifact)"
        )
    return tags.get("rose.candidate", run_id)


def load_ref(
    ref: str,
    task: str | Task,
    language: str,
    *,
    split: str = "train",
    strict_labels: bool = True,
    name: str | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    label_map: str | dict | None = None,
    encoding: str = "utf-8",
) -> LabelledData:
    """Load the data a reference names.

    - ``human:<source>``: the human ``split`` of the task and language under ``<source>`` (``hub`` allowed);
      named ``human``.
    - a run id (32 hex digits, optionally ``runs:/``): that generate run's dataset, named by its candidate.
    - a path to a ``.jsonl``/``.parquet``/``.csv`` file or to a folder holding ``data.jsonl``: named after
      the ``candidate`` field of its rows, else the file's stem.
    A label outside the task is an error naming the file and line (``strict_labels``).

    ``text_column``, ``label_column`` and ``label_map`` apply to a dataset *file* (and ``human:<file>``): a
    user's own columns and label ids. Run ids, ``data.jsonl`` folders and human data folders keep their layout.
    """
    task = get_task(task) if isinstance(task, str) else task
    ref = ref.strip()
    mapping = {"text_column": text_column, "label_column": label_column, "label_map": label_map}
    if ref.startswith(HUMAN_PREFIX):
        source = human_source(ref)
        is_file = Path(source).expanduser().is_file()
        data = load_split(task, language, split, source, encoding=encoding, **(mapping if is_file else {}))
        data.name = name or HUMAN_NAME
        return data
    own_file = False
    if is_run_id(ref):
        path = download_dataset(ref)
        default_name = run_name_of(ref, task)
    else:
        path = Path(ref).expanduser()
        if path.is_dir():
            path = path / DATA_FILE
        if not path.exists():
            raise RoseError(
                f"no dataset at {ref}: pass a generate run id, a .jsonl/.parquet/.csv file, or human:<data folder>"
            )
        own_file = path.name != DATA_FILE
        default_name = path.stem if own_file else path.parent.name
    rows = read_rows(path, encoding)
    if not rows:
        raise RoseError(f"{path}: the dataset is empty: generate it again or point at another one")
    candidate = rows[0][1].get("candidate")
    labels = (parse_label_map(label_map) or dict(task.label_map)) if own_file else {}
    check_label_map(labels, task)
    text_field, label_field = default_columns(task, rows[0][1], text_column, label_column) if own_file else (
        "text", "label")  # fmt: skip
    data = rows_to_data(
        rows,
        task,
        text_field=text_field,
        label_field=label_field,
        where=str(path),
        strict_labels=strict_labels,
        label_map=labels,
    )
    data.name = name or candidate or default_name
    return data
