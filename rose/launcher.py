"""The run ``mlflow run`` started for an entry point (``MLFLOW_RUN_ID``), and rose's runs inside it.

A single-stage entry point works in that run: the first run of its stage rose starts in the run's experiment is that
run (:func:`new_run`, used by every top-level run rose creates). A study makes it its pipeline run and the parent of
the runs it starts (``mlflow.parentRunId``, passed to workers in ``ROSE_PARENT_RUN_ID``). If rose does not use it (a
finished run was reused, the run is in another experiment, or rose stopped before starting a run), :func:`close`
makes it a ``rose.stage=launch`` run that says so: ``mlflow run`` leaves no run without rose's tags.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)
TAG = "rose."

LAUNCHER_ENV = "ROSE_LAUNCHER_RUN_ID"
LAUNCHER_STAGE_ENV = "ROSE_LAUNCHER_STAGE"
PARENT_ENV = "ROSE_PARENT_RUN_ID"  # "<experiment id>:<run id>": the run new top-level runs nest under


def adopt(stage: str) -> str | None:
    """Keep the run ``mlflow run`` started for an entry point, for the ``stage`` that will work in it.

    ``mlflow run`` starts a run and passes its id (and experiment) in the environment. Both variables are dropped
    (MLflow would otherwise resume that run for every run rose starts) and the id is kept for ``stage``: the first
    run of that stage rose starts in the run's experiment is that run (:func:`take`); a study makes it its
    pipeline run, the parent of the runs it starts. :func:`close` says why if nothing used it. Returns its id,
    if any.
    """
    run_id = os.environ.pop("MLFLOW_RUN_ID", None)
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    if run_id:
        os.environ[LAUNCHER_ENV], os.environ[LAUNCHER_STAGE_ENV] = run_id, stage
    return run_id


def take(stage: str, experiment_id: str) -> str | None:
    """The ``mlflow run`` run, for the first run of ``stage`` in its experiment (then no one else gets it)."""
    import mlflow

    run_id = os.environ.get(LAUNCHER_ENV)
    if not run_id or os.environ.get(LAUNCHER_STAGE_ENV) != stage:
        return None
    run = mlflow.MlflowClient().get_run(run_id)
    if run.info.experiment_id != str(experiment_id) or run.info.status != "RUNNING":
        _elsewhere["experiment"] = str(experiment_id)
        return None
    os.environ.pop(LAUNCHER_ENV)
    return run_id


def give_back(run_id: str, run_tags: dict[str, str]) -> bool:
    """Undo :func:`use` (the run lost its claim to another process): its rose tags go and it waits for
    the next run of its stage, or :func:`close`. False when ``run_id`` is not the launcher."""
    import mlflow

    if run_id not in _taken:
        return False
    _taken.discard(run_id)
    client = mlflow.MlflowClient()
    for key in run_tags:
        if key.startswith(TAG):
            client.delete_tag(run_id, key)
    os.environ[LAUNCHER_ENV] = run_id
    return True


_taken: set[str] = set()


def is_launcher(run_id: str) -> bool:
    """Whether ``run_id`` is the run ``mlflow run`` started, now rose's."""
    return run_id in _taken


_elsewhere: dict[str, str] = {}  # the experiment a run of the launcher's stage went to instead of the launcher's


def close(failed: bool) -> None:
    """If no rose run used the ``mlflow run`` run, make it say why and end it: it gets ``rose.stage=launch``, the
    entry point (``rose.entry_point``), the task and language it was given, and a description (rose reused a
    finished run, or worked in another experiment, or stopped before starting a run). MLflow Projects ends it
    itself, so it cannot be deleted."""
    import mlflow
    from mlflow.entities import RunTag

    import rose

    run_id = os.environ.pop(LAUNCHER_ENV, None)
    stage = os.environ.pop(LAUNCHER_STAGE_ENV, "")
    if not run_id:
        return
    client = mlflow.MlflowClient()
    try:
        params = client.get_run(run_id).data.params
        if failed:
            why = "rose stopped before starting a run of its own (the command's output says why)"
        elif experiment := _elsewhere.get("experiment"):
            name = client.get_experiment(experiment).name
            why = (f"rose's runs went to the experiment {name!r}: `mlflow run --experiment-name {name}` makes rose "
                   "work in the run mlflow run starts")  # fmt: skip
        else:
            why = "rose reused a finished run with the same configuration"
        tags = {f"{TAG}stage": "launch", f"{TAG}version": rose.__version__, f"{TAG}entry_point": stage,
                **{f"{TAG}{k}": params[k] for k in ("task", "language") if params.get(k)},
                "mlflow.runName": f"mlflow run · {stage}",
                "mlflow.note.content": f"`mlflow run` started this run for the entry point {stage}; {why}."}  # fmt: skip
        client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
        client.set_terminated(run_id, "FAILED" if failed else "FINISHED")
    except Exception as exc:  # noqa: BLE001 - the store went away: mlflow run ends the run itself
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.warning("the run mlflow run started (%s) was not described: %s", run_id, reason)


def parent_tags(experiment_id: str) -> dict[str, str]:
    """``mlflow.parentRunId`` for a new top-level run when a study runs inside an ``mlflow run`` run (same
    experiment), else nothing."""
    value = os.environ.get(PARENT_ENV, "")
    exp, _, run_id = value.partition(":")
    return {"mlflow.parentRunId": run_id} if run_id and exp == str(experiment_id) else {}


def use(run_id: str, run_tags: dict[str, str]) -> None:
    """Make the ``mlflow run`` run rose's run: its tags (and name) set."""
    import mlflow
    from mlflow.entities import RunTag

    _taken.add(run_id)
    mlflow.MlflowClient().log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in run_tags.items()])


def new_run(experiment_id: str, run_tags: dict[str, str], name: str):
    """A new top-level run (``MlflowClient.create_run``), or the ``mlflow run`` run when it waits for this
    stage; nested under a study's ``mlflow run`` run where there is one."""
    import mlflow

    client = mlflow.MlflowClient()
    run_tags = {**run_tags, **parent_tags(experiment_id), "mlflow.runName": name}
    launcher = take(run_tags.get(f"{TAG}stage", ""), experiment_id)
    if launcher is None:
        return client.create_run(experiment_id, tags=run_tags)
    use(launcher, run_tags)
    return client.get_run(launcher)
