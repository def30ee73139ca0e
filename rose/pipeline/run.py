"""``run_pipeline``: a whole study in one call: generate, train (with cross-evaluation), score.

Every unit whose finished run already exists is skipped, so a stopped study continues where it stopped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from rose.errors import RoseError

log = logging.getLogger(__name__)
EXECUTORS = ("local", "ray")


@dataclass
class PipelineResult:
    run_id: str | None
    plan: str
    experiment: str
    score_runs: list[str] = field(default_factory=list)
    ran: int = 0
    skipped: int = 0
    wall_s: float = 0.0


def run_pipeline(
    config: str | Path,
    *,
    executor: str = "local",
    max_parallel: int = 1,
    dry_run: bool = False,
    ray_address: str | None = None,
    gpus_per_generator: float = 0.0,
) -> PipelineResult:
    """Run the study in ``config``; with ``dry_run`` only build and return the plan."""
    from rose import tracking
    from rose.pipeline import execute, plan
    from rose.pipeline.study import load_study

    if executor not in EXECUTORS:
        raise RoseError(f"unknown executor {executor!r}: use local or ray")
    if max_parallel < 1:
        raise RoseError("--max-parallel must be 1 or more")
    if gpus_per_generator < 0:
        raise RoseError("--gpus-per-generator must be 0 or more")
    study = load_study(config)  # every check happens here, before anything runs
    tracking.setup(study.experiment)
    units = plan.build(study)
    plan.mark_done(units, study.experiment)
    text = plan.describe(units)
    skipped = sum(bool(u.run_id) for u in units)
    if dry_run:
        return PipelineResult(None, text, study.experiment, skipped=skipped)
    log.info("plan of %s:\n%s", config, text)
    started = time.perf_counter()
    run_id = _open_pipeline_run(study, text)
    status = "FAILED"
    try:
        if executor == "ray":
            execute.run_ray(str(config), units, address=ray_address, gpus_per_generator=gpus_per_generator)
        else:
            execute.run_local(str(config), units, max_parallel=max_parallel)
        status = "FINISHED"
    except KeyboardInterrupt as exc:
        status = "KILLED"
        tracking.record_error(run_id, exc, "interrupted (Ctrl-C or SIGINT)")
        raise
    except Exception as exc:
        tracking.record_error(run_id, exc)
        raise
    finally:
        _close_pipeline_run(run_id, status, units, skipped, time.perf_counter() - started)
    scores = [u.run_id for u in units if u.stage == "score"]
    return PipelineResult(
        run_id, text, study.experiment, scores, len(units) - skipped, skipped, time.perf_counter() - started
    )


def _open_pipeline_run(study, plan_text: str) -> str:
    """A run that records the study (not a parent: stage runs stay top-level so they can be found alone)."""
    import mlflow

    from rose import tracking

    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(study.experiment)
    text = Path(study.path).read_text(encoding="utf-8")
    run_tags = tracking.tags(
        "pipeline", ",".join(study.tasks), ",".join(study.languages), digest=tracking.digest({"study": text})
    )
    run = client.create_run(exp.experiment_id, tags={**run_tags, "mlflow.runName": f"pipeline-{Path(study.path).stem}"})
    client.log_text(run.info.run_id, text, "study.yaml")
    client.log_text(run.info.run_id, plan_text, "plan.txt")
    client.log_param(run.info.run_id, "candidates", ",".join(c.name for c in study.candidates))
    return run.info.run_id


def _close_pipeline_run(run_id: str, status: str, units, skipped: int, wall: float) -> None:
    import mlflow

    client = mlflow.MlflowClient()
    for key, value in {"units_total": len(units), "units_skipped": skipped, "wall_time_s": wall}.items():
        client.log_metric(run_id, key, value)
    client.set_terminated(run_id, status)


def leaderboards(score_run_ids: list[str]) -> str:
    """The leaderboard text each score run logged."""
    import mlflow

    out = []
    for run_id in score_run_ids:
        try:
            out.append(mlflow.artifacts.load_text(f"runs:/{run_id}/report/leaderboard.txt"))
        except Exception:  # an older score run without the text file
            out.append(f"(score run {run_id}: open it in the MLflow UI)")
    return "\n\n".join(out)


def where_to_look(experiment: str) -> str:
    from rose import tracking

    uri = tracking.tracking_uri()
    if uri.startswith("sqlite:"):
        cmd = f"mlflow ui --backend-store-uri {uri} --port 5000"
        url = "http://127.0.0.1:5000"
    else:
        cmd, url = "(your tracking server is already running)", uri
    return (
        f"Look at the runs: {cmd}\n"
        f"then open {url}, the experiment '{experiment}' and its 'Training runs' (generate, train and score "
        f"runs are tagged rose.stage); the champion classifier is under Models."
    )
