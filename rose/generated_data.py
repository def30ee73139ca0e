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
from pathlib import Path
from typing import Any

from rose.catalog import Task, get_task
from rose.errors import RoseError
from rose.human_data import LabelledData, load_split, read_rows, rows_to_data

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


def run_name_of(run_id: str) -> str:
    """The candidate name a generate run carries (``rose.candidate``), else its run id."""
    import mlflow

    run = mlflow.MlflowClient().get_run(run_id.removeprefix("runs:/"))
    return run.data.tags.get("rose.candidate", run_id)


def load_ref(
    ref: str,
    task: str | Task,
    language: str,
    *,
    split: str = "train",
    strict_labels: bool = True,
    name: str | None = None,
    encoding: str = "utf-8",
) -> LabelledData:
    """Load the data a reference names.

    - ``human:<source>``: the human ``split`` of the task and language under ``<source>`` (``hub`` allowed);
      named ``human``.
    - a run id (32 hex digits, optionally ``runs:/``): that generate run's dataset, named by its candidate.
    - a path to a ``.jsonl``/``.parquet``/``.csv`` file or to a folder holding ``data.jsonl``: named after
      the ``candidate`` field of its rows, else the file's stem.
    A label outside the task is an error naming the file and line (``strict_labels``).
    """
    task = get_task(task) if isinstance(task, str) else task
    ref = ref.strip()
    if ref.startswith(HUMAN_PREFIX):
        data = load_split(task, language, split, ref[len(HUMAN_PREFIX) :] or "../shared/data", encoding=encoding)
        data.name = name or HUMAN_NAME
        return data
    if is_run_id(ref):
        path = download_dataset(ref)
        default_name = run_name_of(ref)
    else:
        path = Path(ref).expanduser()
        if path.is_dir():
            path = path / DATA_FILE
        if not path.exists():
            raise RoseError(
                f"no dataset at {ref}: pass a generate run id, a .jsonl/.parquet file, or human:<data folder>"
            )
        default_name = path.stem if path.name != DATA_FILE else path.parent.name
    rows = read_rows(path, encoding)
    if not rows:
        raise RoseError(f"{path}: the dataset is empty: generate it again or point at another one")
    candidate = rows[0][1].get("candidate")
    data = rows_to_data(
        rows, task, text_field="text", label_field="label", where=str(path), strict_labels=strict_labels
    )
    data.name = name or candidate or default_name
    return data
