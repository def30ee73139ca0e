"""MLflow set-up and the run schema every stage follows.

With no ``MLFLOW_TRACKING_URI`` set, runs go to a SQLite store (``mlflow.db``) and an artifact folder
(``mlartifacts/``) in the project directory, so the UI and the model registry work with no server.

Run schema (tags). Every run: ``rose.stage`` (generate, train, evaluate, score, tune, pipeline), ``rose.task``
(the task's name), ``rose.task_digest`` (its content, :attr:`rose.tasks.Task.digest`; the run also holds the
artifact ``task.yaml``), ``rose.language``, ``rose.digest`` (digest of the configuration that produced it), ``rose.version``.
Generate runs and train runs on generated data: ``rose.candidate``, ``rose.generator``, ``rose.strategy``.
Imported datasets (``rose data import``) are generate runs with ``rose.origin=imported`` and ``rose.source``.
Train runs: ``rose.train_data`` (candidate name or ``human``), ``rose.classifier``, ``rose.seed`` (seed runs),
``rose.role`` (``setting`` for the parent, ``seed`` for a nested run), ``rose.data_run_id`` (the generate run),
``rose.setting`` (the training settings without the data). Evaluate runs (cells): see :mod:`rose.train.cells`.
Generate and train parents: the lease ``rose.lease.host``, ``rose.lease.pid``, ``rose.lease.heartbeat``,
``rose.lease.owner`` (see :mod:`rose.lease`). A failed run: ``rose.error`` (why) and the artifact ``error.txt``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import rose
from rose import launcher as launched
from rose import lease as leases
from rose.errors import RoseError
from rose.locations import project_dir

STAGES = ("generate", "train", "evaluate", "score", "tune", "pipeline")  # a study runs the first four, in order
TAG = "rose."

DB_NAME = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
# The experiment kind MLflow's UI reads (``mlflow.experimentKind``): rose's experiments are model development.
KIND_TAG = "mlflow.experimentKind"
KIND = "custom_model_development"


def default_tracking_uri() -> str:
    return f"sqlite:///{project_dir() / DB_NAME}"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


PROBE_TIMEOUT_S = 5.0


def probe(uri: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Fail within seconds, in one line naming ``uri``, when the tracking store cannot be created, reached or
    written (a missing or read-only folder, a locked or foreign SQLite file, a server that does not answer)."""
    if uri.startswith("sqlite:"):
        _probe_sqlite(uri, timeout)
    elif uri.startswith(("http://", "https://")):
        _probe_http(uri, timeout)
    elif uri.startswith("file:") or "://" not in uri:
        folder = Path(uri.removeprefix("file://").removeprefix("file:")).expanduser()
        parent = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if parent is None or not os.access(parent, os.W_OK):
            raise RoseError(f"tracking store {uri}: cannot write under {parent or folder}: choose another store "
                            "(MLFLOW_TRACKING_URI)")  # fmt: skip


def _probe_sqlite(uri: str, timeout: float) -> None:
    import sqlite3

    path = uri.split("://", 1)[1] if "://" in uri else ""
    if path in ("", "/", "/:memory:"):
        return
    path = Path(path[1:] if path.startswith("/") else path).expanduser()  # sqlite:///rel, sqlite:////abs
    fix = "fix MLFLOW_TRACKING_URI or create the folder"
    if not path.parent.is_dir():
        raise RoseError(f"tracking store {uri}: the folder {path.parent} does not exist: {fix}")
    if path.is_dir():
        raise RoseError(f"tracking store {uri}: {path} is a folder, not a database file: fix MLFLOW_TRACKING_URI")
    if not path.exists():  # a file made and removed beside it: permissions alone do not tell (root, /proc)
        trial = path.parent / f".{path.name}.probe-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            os.close(os.open(trial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            os.unlink(trial)
        except OSError as exc:
            raise RoseError(f"tracking store {uri}: cannot create the database in {path.parent} "
                            f"({exc.strerror or exc}): {fix}") from None  # fmt: skip
        return
    if not os.access(path, os.R_OK | os.W_OK):
        raise RoseError(f"tracking store {uri}: {path} is not readable and writable by you")
    try:
        conn = sqlite3.connect(str(path), timeout=timeout)
        try:
            conn.execute("BEGIN IMMEDIATE")  # waits up to `timeout` for another writer, then fails
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            conn.rollback()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        what = "is locked by another process" if "locked" in str(exc) else f"cannot be used ({exc})"
        raise RoseError(f"tracking store {uri} {what}: try again, or use another store (MLFLOW_TRACKING_URI)") from None


def _probe_http(uri: str, timeout: float) -> None:
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout).close()
    except urllib.error.HTTPError:
        return  # it answers; a server without /health is still a server
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RoseError(
            f"cannot reach the tracking server {uri} ({reason}): start it, or fix MLFLOW_TRACKING_URI"
        ) from None


def connect() -> str:
    """Check the tracking store answers (:func:`probe`) and point MLflow at it; returns its URI."""
    import mlflow

    uri = tracking_uri()
    probe(uri)
    mlflow.set_tracking_uri(uri)  # the model registry follows it unless MLFLOW_REGISTRY_URI says otherwise
    return uri


def _first_line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return str(text).strip().splitlines()[0] if str(text).strip() else type(exc).__name__


def setup(experiment: str = "rose", *, create: bool = True) -> str:
    """Point MLflow at the tracking store and make ``experiment`` current (created unless ``create`` is
    False, when an unknown experiment is an error); returns its id."""
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = connect()
    exp = mlflow.get_experiment_by_name(experiment)
    if exp is None and not create:
        known = [e.name for e in mlflow.search_experiments(max_results=50)]
        raise RoseError(
            f"no experiment {experiment!r} in {uri} (experiments there: {', '.join(known) or 'none'}): "
            "check --experiment, or run `rose generate` and `rose train` into it first"
        )
    if exp is None:
        location = None
        if uri.startswith(("sqlite:", "file:")) or "://" not in uri:
            location = (project_dir() / ARTIFACTS_DIR).as_uri()
        try:
            exp_id = mlflow.create_experiment(experiment, artifact_location=location, tags={KIND_TAG: KIND})
        except MlflowException as exc:  # another process created it first, or MLflow refuses the name
            exp = mlflow.get_experiment_by_name(experiment)
            if exp is None:
                raise RoseError(f"experiment {experiment!r}: {_first_line(exc)}") from None
            exp_id = exp.experiment_id
    else:
        exp_id = exp.experiment_id
    if exp is not None and exp.lifecycle_stage == "deleted":
        raise RoseError(
            f"experiment {experiment!r} was deleted in {uri}: restore it (`mlflow experiments restore "
            f"--experiment-id {exp_id}`) or choose another --experiment"
        )
    if exp is not None and not exp.tags.get(KIND_TAG):  # an experiment made elsewhere: a kind the user set stays
        mlflow.MlflowClient().set_experiment_tag(exp_id, KIND_TAG, KIND)
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def digest(config: Any, n: int = 16) -> str:
    """A stable digest of a JSON-able configuration (keys sorted)."""
    blob = json.dumps(config, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:n]


def tags(stage: str, task: Any, language: str, **extra: Any) -> dict[str, str]:
    """The schema's tags for a run: ``rose.stage``, ``rose.task`` and ``rose.task_digest`` (``task`` is a
    :class:`rose.tasks.Task`; a bare name, e.g. a study's tasks joined, carries no digest), ``rose.language`` and
    any extras."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}")
    name, task_digest = _task_identity(task)
    out = {f"{TAG}stage": stage, f"{TAG}task": name, f"{TAG}language": language, f"{TAG}version": rose.__version__}
    if task_digest:
        out[f"{TAG}task_digest"] = task_digest
    out.update({f"{TAG}{k}": str(v) for k, v in extra.items() if v is not None})
    return out


_TASK_FILES: dict[str, str] = {}  # task digest -> task.yaml text, of the tasks runs were tagged with here


def _task_identity(task: Any) -> tuple[str, str]:
    """(name, digest) of a task given as a :class:`rose.tasks.Task` (its ``task.yaml`` is kept for
    :func:`run` to log), or (name, "") for a bare name."""
    if hasattr(task, "digest") and hasattr(task, "to_yaml"):
        _TASK_FILES.setdefault(task.digest, task.to_yaml())
        return task.name, task.digest
    return str(task), ""


def filter_string(**tag_values: str) -> str:
    """An MLflow search filter on rose tags, e.g. ``filter_string(stage="train", task="topic")``."""
    parts = []
    for key, value in tag_values.items():
        if value is None:
            continue
        escaped = str(value).replace("'", "\\'")
        parts.append(f"tags.`{TAG}{key}` = '{escaped}'")
    return " and ".join(parts)


def search_runs(experiment: str = "rose", *, finished_only: bool = True, **tag_values: str):
    """Runs of ``experiment`` matching rose tags, as a list of ``mlflow.entities.Run`` (one query, paged)."""
    import mlflow
    from mlflow.entities import ViewType

    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    query = filter_string(**tag_values)
    if finished_only:
        query = f"{query} and attributes.status = 'FINISHED'" if query else "attributes.status = 'FINISHED'"
    runs, token = [], None
    while True:
        page = client.search_runs(
            [exp.experiment_id], query, run_view_type=ViewType.ACTIVE_ONLY, max_results=1000, page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def find_finished(experiment: str, stage: str, config_digest: str):
    """The newest finished run of ``stage`` with this configuration digest, or None."""
    runs = search_runs(experiment, stage=stage, digest=config_digest)
    return max(runs, key=lambda r: r.info.start_time) if runs else None


def unfinished(experiment: str, stage: str, config_digest: str):
    """The newest run of ``stage`` with this digest that did not finish and that no live process holds
    (killed, crashed, or its lease gone stale; see :mod:`rose.lease`), or None."""
    runs = [
        r
        for r in search_runs(experiment, finished_only=False, stage=stage, digest=config_digest)
        if r.info.status != "FINISHED" and not leases.is_live(r)
    ]
    return max(runs, key=lambda r: r.info.start_time) if runs else None


def claim(experiment: str, stage: str, config_digest: str, run_tags: dict[str, str], name: str):
    """The one-run-per-digest protocol of :func:`rose.lease.claim` in ``experiment`` (set up first)."""
    import mlflow

    exp = mlflow.MlflowClient().get_experiment_by_name(experiment)
    return leases.claim(exp.experiment_id, stage, config_digest, run_tags, name)


def claim_new(experiment: str, run_tags: dict[str, str], name: str):
    """A fresh run under a lease (no reuse), as a :class:`rose.lease.Claim`."""
    import mlflow

    exp = mlflow.MlflowClient().get_experiment_by_name(experiment)
    return leases.hold_new(exp.experiment_id, run_tags, name)


def child_runs(parent_run_id: str) -> list:
    """The active runs nested under ``parent_run_id`` (any status)."""
    import mlflow

    run = mlflow.MlflowClient().get_run(parent_run_id)
    return mlflow.MlflowClient().search_runs(
        [run.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}'", max_results=10000
    )


ERROR_TAG = f"{TAG}error"
TASK_FILE = "task.yaml"
ERROR_FILE = "error.txt"


@contextlib.contextmanager
def run(
    name: str,
    run_tags: dict[str, str],
    *,
    nested: bool = False,
    params: dict | None = None,
    run_id: str | None = None,
    lease: Any = None,
):
    """Start an MLflow run with the schema's tags (and params), yielding the active run.

    With ``run_id``, continue that run (unfinished, or created by :func:`claim`) instead of starting a new one;
    ``lease`` (from :func:`claim`) is released when the run ends. A run that fails ends FAILED (KILLED on
    Ctrl-C) with the reason in the tag ``rose.error`` and, with the traceback, in the artifact ``error.txt``.
    """
    import mlflow

    if run_id is None and not nested and mlflow.active_run() is None:  # a top-level run: maybe `mlflow run`'s
        from mlflow.tracking.fluent import _get_experiment_id

        experiment_id = _get_experiment_id()
        run_tags = {**run_tags, **launched.parent_tags(experiment_id)}
        if launcher := launched.take(run_tags.get(f"{TAG}stage", ""), experiment_id):
            launched.use(launcher, {**run_tags, "mlflow.runName": name})
            run_id = launcher
    try:
        with mlflow.start_run(run_id=run_id, run_name=None if run_id else name, tags=run_tags, nested=nested) as active:
            try:
                _log_task(run_tags)
                if params:
                    log_params(params)
                yield active
            except KeyboardInterrupt as exc:
                record_error(active.info.run_id, exc, "interrupted (Ctrl-C or SIGINT)")
                mlflow.end_run("KILLED")
                raise
            except BaseException as exc:
                record_error(active.info.run_id, exc)
                raise
    finally:
        if lease is not None:
            lease.release()


def _log_task(run_tags: dict[str, str]) -> None:
    """The artifact ``task.yaml`` of the run's task (docs/CONTRACTS.md, "Identities", rule 2)."""
    import mlflow

    text = _TASK_FILES.get(run_tags.get(f"{TAG}task_digest", ""))
    if text is not None:
        mlflow.log_text(text, TASK_FILE)


def record_error(run_id: str, exc: BaseException, reason: str | None = None) -> None:
    """Say on the run why it failed; never hides the original error."""
    import traceback

    import mlflow

    reason = reason or _first_line(exc)
    try:
        client = mlflow.MlflowClient()
        client.set_tag(run_id, ERROR_TAG, reason[:4000])
        detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        client.log_text(run_id, f"{reason}\n\n{detail}", ERROR_FILE)
    except Exception as secondary:  # noqa: BLE001 - the store itself may be what failed
        import logging

        logging.getLogger(__name__).warning("could not record the error on run %s: %s", run_id, secondary)


def run_name(stage: str, what: str = "") -> str:
    """A run name that says what the run is: ``generate · <candidate>``, ``train · <candidate>``, ``seed 3``,
    ``score · topic/en``, ``import · <candidate>``, ``tune · <data>``."""
    return f"{stage} · {what}" if what else stage


def log_params(params: dict[str, Any]) -> None:
    """Log params, making values strings of at most MLflow's length limit."""
    import mlflow

    clean = {k: (json.dumps(v, sort_keys=True) if isinstance(v, (dict, list, tuple)) else v) for k, v in params.items()}
    clean = {k: str(v)[:6000] for k, v in clean.items() if v is not None}
    active = mlflow.active_run()
    if active is not None:  # the `mlflow run` run holds the entry point's parameters as typed: they stay
        clean = {k: v for k, v in clean.items() if k not in active.data.params}
    mlflow.log_params(clean)  # log_batch chunks by 100
