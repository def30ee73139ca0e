"""``rose data import``: a dataset made elsewhere becomes a candidate of a task and language.

The dataset (a ``.csv``/``.jsonl``/``.parquet`` file, a Hugging Face ``datasets`` folder written by
``save_to_disk``, or a hub id) is checked in full before anything is tracked, then logged as a run of its own
tagged like a generate run (``rose.stage=generate``, ``rose.origin=imported``, ``rose.candidate``,
``rose.generator``, ``rose.strategy``), with the artifact layout of a generate run
(``dataset/data.jsonl``, ``dataset/data.parquet``, ``dataset/rejected.jsonl``), an MLflow dataset input and the
label counts (``kept/<label>``). Training, cross-evaluation, ``rose score`` and the champion then treat it exactly
like a generated candidate; ``rose score`` measures its intrinsic metrics, as a generated candidate's, with the
tools it is given. The same data and settings reuse the finished run.

Bad input is a one-line error and leaves no run behind: no text column, an empty file, a label outside the task,
a label of the task with no examples. Empty texts, repeated texts (the same words and spacing up to whitespace) and labels the task drops (``neutral`` for
sentiment) are dropped, counted (``empty_dropped``, ``duplicates_dropped``, ``label_dropped``) and logged.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rose import generated_data, tracking
from rose.config import field as option
from rose.config import to_params
from rose.errors import MissingDependency, RoseError
from rose.generate.identity import by_content, file_params
from rose.human_data import check_label_map, default_columns, parse_label_map, read_rows, rows_to_data
from rose.languages import get_language
from rose.locations import is_hub_id, project_dir
from rose.naming import metric_key, slug
from rose.tasks import Task, get_task

log = logging.getLogger(__name__)

ORIGIN = "imported"
STEP = "import"
# Settings that do not change what is imported: left out of the digest.
NOT_IN_DIGEST = ("experiment", "resume", "data")


@dataclass
class ImportConfig:
    """Register a dataset made elsewhere as a candidate (one MLflow run, tagged like a generate run)."""

    task: str = option(help="task: topic, intent, intent_all, sentiment or a task file (.yaml)")
    language: str = option(help="ISO 639-1 or 639-3 code of the dataset's language, e.g. en")
    data: str = option(help="a .csv/.jsonl/.parquet file, a Hugging Face datasets folder (save_to_disk) or a hub id")
    candidate: str = option("", help="candidate name (default: the file's or dataset's name)")
    generator: str = option("", help="the model that wrote the data, e.g. meta-llama/Meta-Llama-3-70B-Instruct "
                                     "(default: the candidate name)")  # fmt: skip
    strategy: str = option("imported", help="how the data was made (a tag, free text)")
    text_column: str = option("", help="text column (default: the task file's text_column when the data has it, "
                                       "else text)")  # fmt: skip
    label_column: str = option("", help="label column (default: the task file's label_column when the data has "
                                        "it, else label)")  # fmt: skip
    label_map: str = option("", help="map label values to the task's labels: 0=science/technology,1=travel,... "
                                     "or a .json/.csv/.txt file (default: the task file's label_map)")  # fmt: skip
    split: str = option("train", help="split of a datasets folder or hub dataset")
    experiment: str = option("rose", help="MLflow experiment")
    resume: bool = option(True, help="return an identical finished import instead of importing again")


@dataclass
class ImportResult:
    run_id: str
    candidate: str
    kept: dict[str, int]
    dropped: dict[str, int]
    dataset_path: Path
    metrics: dict[str, float] = field(default_factory=dict)
    reused: bool = False


def import_dataset(config: ImportConfig, progress: Callable[[str], None] | None = None) -> ImportResult:
    """Check, then track, a dataset made elsewhere; see the module docstring. ``progress`` is told each step as it
    starts (default: the log)."""
    task, language = get_task(config.task), get_language(config.language)
    say = progress or log.info
    say(f"reading {config.data}")
    rows, where, default_name, class_names = read_source(config.data, config.split)
    say(f"checking {len(rows)} rows against task {task.name} (labels, empty and repeated texts)")
    candidate = slug(config.candidate or default_name)
    generator = config.generator or candidate
    examples, dropped, rejected = check_rows(rows, task, config, where, class_names)
    for row in examples:
        row.update(task=task.name, language=language.code, generator=generator, strategy=config.strategy,
                   candidate=candidate, step=STEP)  # fmt: skip
    examples = [{k: row.get(k) for k in generated_data.EXAMPLE_FIELDS} for row in examples]
    settings = by_content({k: v for k, v in to_params(config).items() if k not in NOT_IN_DIGEST})
    settings.update(task=task.digest, language=language.to_dict())
    digest = tracking.digest({"import": {**settings, "candidate": candidate, "generator": generator},
                              "content": content_digest(examples)})  # fmt: skip
    tracking.setup(config.experiment)
    if config.resume and (done := tracking.find_finished(config.experiment, "generate", digest)):
        log.info("%s: an identical finished import exists (%s); not importing again", candidate, done.info.run_id)
        return _reused(done, candidate, task)
    kept = Counter(row["label"] for row in examples)
    metrics = _metrics(task, kept, dropped, len(rows))
    say(f"writing the dataset ({len(examples)} examples) and logging it to MLflow")
    folder = project_dir() / ".rose" / "import" / candidate / f"{task.name}-{language.code}-{digest[:8]}"
    path = _write(folder, examples, rejected)
    run_tags = tracking.tags("generate", task, language.code, candidate=candidate, generator=generator,
                             strategy=config.strategy, origin=ORIGIN, source=_source_tag(config.data),
                             digest=digest)  # fmt: skip
    run_id, twin = _track(tracking.run_name("import", candidate), run_tags, config, metrics, folder, path, candidate)
    if twin is not None:
        return _reused(twin, candidate, task)
    log.info("%s: imported %d examples (%s) as run %s", candidate, len(examples),
             ", ".join(f"{k}={v}" for k, v in sorted(kept.items())), run_id)  # fmt: skip
    return ImportResult(run_id, candidate, dict(kept), dict(dropped), path, metrics)


def read_source(data: str, split: str = "train") -> tuple[list[tuple[int, dict]], str, str, list[str] | None]:
    """(rows with line numbers, where they came from, a default candidate name, ClassLabel names if any)."""
    text = data.strip()
    path = Path(text).expanduser()
    if path.is_dir():
        if (path / generated_data.DATA_FILE).exists():
            return read_rows(path / generated_data.DATA_FILE), str(path), path.name, None
        if any((path / name).exists() for name in ("dataset_info.json", "state.json", "dataset_dict.json")):
            return _datasets_rows(_load_from_disk(path), split, str(path), path.name)
        raise RoseError(f"{path}: a folder must hold a datasets save_to_disk dataset or a data.jsonl")
    if path.exists():
        return read_rows(path), str(path), path.stem, None
    if is_hub_id(text):
        return _datasets_rows(_load_hub(text, split), split, f"hub:{text}", text.split("/")[-1])
    raise RoseError(f"no such file: {data}: pass a .csv/.jsonl/.parquet file, a datasets folder or a hub id (org/name)")


def _load_from_disk(path: Path):
    try:
        import datasets
    except ImportError:
        raise MissingDependency("datasets", purpose="reading a save_to_disk folder") from None
    try:
        return datasets.load_from_disk(str(path))
    except Exception as exc:  # FileNotFoundError, a version mismatch: the message is what matters
        raise RoseError(f"{path}: cannot read the datasets folder ({str(exc).splitlines()[0]})") from None


def _load_hub(hub_id: str, split: str):
    try:
        import datasets
    except ImportError:
        raise MissingDependency("datasets", purpose="loading data from the Hugging Face hub") from None
    try:
        return datasets.load_dataset(hub_id, split=split)
    except Exception as exc:  # no network, no such dataset or split
        raise RoseError(f"cannot load {hub_id} (split {split}) from the hub: {str(exc).splitlines()[0]}") from None


def _datasets_rows(ds, split: str, where: str, name: str):
    if hasattr(ds, "keys") and not hasattr(ds, "features"):  # a DatasetDict
        if split not in ds:
            raise RoseError(f"{where}: no split {split!r} (splits: {', '.join(ds)}): pass --split")
        ds = ds[split]
    names = {col: feature.names for col, feature in ds.features.items() if hasattr(feature, "names")}
    rows = list(enumerate(ds.to_list(), 1))
    return rows, where, name, names or None


def check_rows(
    rows: list[tuple[int, dict]], task: Task, config: ImportConfig, where: str, class_names: dict | None = None
) -> tuple[list[dict], Counter, list[dict]]:
    """The examples to import, the counted drops and the dropped rows; RoseError on what cannot be imported."""
    if not rows:
        raise RoseError(f"{where}: the dataset is empty: nothing to import")
    text_field, label_field = default_columns(task, rows[0][1], config.text_column, config.label_column)
    labels = parse_label_map(config.label_map) or dict(task.label_map)
    if not labels and class_names and label_field in class_names:  # a datasets ClassLabel: ids -> names
        labels = {str(i): name for i, name in enumerate(class_names[label_field])}
    check_label_map(labels, task)
    data = rows_to_data(rows, task, text_field=text_field, label_field=label_field, where=where,
                        strict_labels=True, label_map=labels)  # fmt: skip
    dropped = Counter({"empty_dropped": data.dropped.get("empty text", 0),
                       "label_dropped": data.dropped.get("label outside task", 0)})  # fmt: skip
    examples, rejected, seen = [], [], set()
    for text, label in zip(data.texts, data.labels, strict=True):
        key = " ".join(text.split())
        if key in seen:
            dropped["duplicates_dropped"] += 1
            rejected.append({"text": text, "label": label, "reason": "duplicate"})
            continue
        seen.add(key)
        examples.append({"text": text, "label": label})
    for reason, n in dropped.items():
        if n:
            log.warning("%s: %s %d row(s)", where, reason.replace("_", " "), n)
    if not examples:
        raise RoseError(f"{where}: no rows left to import (dropped: {_counts(dropped)})")
    present = {row["label"] for row in examples}
    missing = [label for label in task.labels if label not in present]
    if missing:
        raise RoseError(
            f"{where}: no examples of label(s) {', '.join(missing)} of task {task.name!r}: a candidate needs every "
            "label (check --label-column/--label-map, or --task)"
        )
    return examples, dropped, rejected


def _counts(counter: Counter) -> str:
    return ", ".join(f"{k} {v}" for k, v in counter.items() if v) or "none"


def content_digest(examples: list[dict]) -> str:
    blob = "\n".join(json.dumps([row["text"], row["label"]], ensure_ascii=False) for row in examples)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _source_tag(data: str) -> str:
    path = Path(data).expanduser()
    return str(path.resolve()) if path.exists() else data


def _metrics(task: Task, kept: Counter, dropped: Counter, rows_read: int) -> dict[str, float]:
    m = {metric_key("kept", label=label): float(kept.get(label, 0)) for label in task.labels}
    m.update(kept_total=float(sum(kept.values())), rows_read=float(rows_read))
    m.update({k: float(dropped.get(k, 0)) for k in ("empty_dropped", "label_dropped", "duplicates_dropped")})
    return m


def _write(folder: Path, examples: list[dict], rejected: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = generated_data.write_jsonl(examples, folder / generated_data.DATA_FILE)
    generated_data.write_parquet(examples, folder / generated_data.PARQUET_FILE)
    generated_data.write_jsonl(rejected, folder / generated_data.REJECTED_FILE)
    return path


def _track(name: str, run_tags: dict, config: ImportConfig, metrics: dict, folder: Path, path: Path,
           candidate: str) -> tuple[str, object]:  # fmt: skip
    """Log the run under a lease (one run per digest, even in a race); returns (run id, a finished twin or None).
    If logging fails part-way, the run is deleted so no half import is left behind."""
    import mlflow

    claim = (
        tracking.claim(config.experiment, "generate", run_tags[f"{tracking.TAG}digest"], run_tags, name)
        if config.resume
        else tracking.claim_new(config.experiment, run_tags, name)
    )
    if claim.finished is not None:  # another process imported the same data meanwhile
        return claim.finished.info.run_id, claim.finished
    try:
        with tracking.run(name, run_tags, run_id=claim.run_id, lease=claim.lease) as run:
            try:
                tracking.log_params({**to_params(config), **file_params(to_params(config))})
            except Exception as exc:  # an adopted run keeps the values it was first given
                log.warning("params not logged again: %s", str(exc).splitlines()[0])
            mlflow.log_metrics(metrics)
            mlflow.log_artifacts(str(folder), generated_data.ARTIFACT_DIR)
            generated_data.log_input(path, candidate, context=ORIGIN)
    except BaseException:
        mlflow.MlflowClient().delete_run(claim.run_id)
        raise
    return run.info.run_id, None


def _reused(run, candidate: str, task: Task) -> ImportResult:
    m = run.data.metrics
    path, counts = generated_data.reused_dataset(run, task.labels)
    dropped = {k: int(m.get(k, 0)) for k in ("empty_dropped", "label_dropped", "duplicates_dropped")}
    return ImportResult(run.info.run_id, candidate, counts["kept"], dropped, path, dict(m), reused=True)
