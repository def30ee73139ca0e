"""MLflow set-up and the run schema every stage follows.

With no ``MLFLOW_TRACKING_URI`` set, runs go to a SQLite store (``mlflow.db``) and an artifact folder
(``mlartifacts/``) in the project directory, so the UI and the model registry work with no server.

Run schema (tags). Every run: ``rose.stage`` (generate, train, evaluate, score, tune, pipeline), ``rose.task``,
``rose.language``, ``rose.digest`` (digest of the configuration that produced it), ``rose.version``.
Generate runs and train runs on generated data: ``rose.candidate``, ``rose.generator``, ``rose.strategy``.
Train runs: ``rose.train_data`` (candidate name or ``human``), ``rose.classifier``, ``rose.seed`` (seed runs),
``rose.role`` (``setting`` for the parent, ``seed`` for a nested run), ``rose.data_run_id`` (the generate run),
``rose.setting`` (the training settings without the data). Evaluate runs (cells): see :mod:`rose.train.cells`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import rose

STAGES = ("generate", "train", "evaluate", "score", "tune", "pipeline")
TAG = "rose."

DB_NAME = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"


def project_dir(start: Path | None = None) -> Path:
    """The directory holding ``MLproject`` at or above ``start`` (default: the working directory), else it."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "MLproject").exists():
            return folder
    return here


def default_tracking_uri() -> str:
    return f"sqlite:///{project_dir() / DB_NAME}"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def setup(experiment: str = "rose") -> str:
    """Point MLflow at the tracking store and make ``experiment`` current; returns its id."""
    import mlflow

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)  # the model registry follows it unless MLFLOW_REGISTRY_URI says otherwise
    exp = mlflow.get_experiment_by_name(experiment)
    if exp is None:
        location = None
        if uri.startswith(("sqlite:", "file:")) or "://" not in uri:
            location = (project_dir() / ARTIFACTS_DIR).as_uri()
        try:
            exp_id = mlflow.create_experiment(experiment, artifact_location=location)
        except Exception:  # another process created it first
            exp_id = mlflow.get_experiment_by_name(experiment).experiment_id
    else:
        exp_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def adopt_launcher_run() -> str | None:
    """Detach from the run ``mlflow run`` started for an entry point.

    ``mlflow run`` starts a run in the launching experiment and passes its id (and experiment) in the
    environment. rose writes its own runs into the study's experiment, so both variables are dropped here
    and the launcher run stays a thin record that ``mlflow run`` itself ends. Returns its id, if any.
    """
    run_id = os.environ.pop("MLFLOW_RUN_ID", None)
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    return run_id


def digest(config: Any, n: int = 16) -> str:
    """A stable digest of a JSON-able configuration (keys sorted)."""
    blob = json.dumps(config, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:n]


def tags(stage: str, task: str, language: str, **extra: Any) -> dict[str, str]:
    """The schema's tags for a run: ``rose.stage``, ``rose.task``, ``rose.language`` and any extras."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}")
    out = {f"{TAG}stage": stage, f"{TAG}task": task, f"{TAG}language": language, f"{TAG}version": rose.__version__}
    out.update({f"{TAG}{k}": str(v) for k, v in extra.items() if v is not None})
    return out


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
    """The newest run of ``stage`` with this digest that did not finish (killed, crashed), or None."""
    runs = [
        r
        for r in search_runs(experiment, finished_only=False, stage=stage, digest=config_digest)
        if r.info.status != "FINISHED"
    ]
    return max(runs, key=lambda r: r.info.start_time) if runs else None


def child_runs(parent_run_id: str) -> list:
    """The active runs nested under ``parent_run_id`` (any status)."""
    import mlflow

    run = mlflow.MlflowClient().get_run(parent_run_id)
    return mlflow.MlflowClient().search_runs(
        [run.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}'", max_results=10000
    )


@contextlib.contextmanager
def run(
    name: str, run_tags: dict[str, str], *, nested: bool = False, params: dict | None = None, run_id: str | None = None
):
    """Start an MLflow run with the schema's tags (and params), yielding the active run.

    With ``run_id``, continue that (unfinished) run instead of starting a new one.
    """
    import mlflow

    with mlflow.start_run(run_id=run_id, run_name=None if run_id else name, tags=run_tags, nested=nested) as active:
        if params:
            log_params(params)
        yield active


def log_params(params: dict[str, Any]) -> None:
    """Log params, making values strings of at most MLflow's length limit."""
    import mlflow

    clean = {k: (json.dumps(v, sort_keys=True) if isinstance(v, (dict, list, tuple)) else v) for k, v in params.items()}
    clean = {k: str(v)[:6000] for k, v in clean.items() if v is not None}
    items = list(clean.items())
    for i in range(0, len(items), 100):
        mlflow.log_params(dict(items[i : i + 100]))
