"""``run_pipeline``: a whole study in one call: generate, train, evaluate (the cross-evaluation cells), score.

Every unit whose finished run already exists is skipped, so a stopped study continues where it stopped, and a
study that grows or shrinks runs only the units that are new.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from rose import launcher, tracking
from rose.errors import RoseError
from rose.pipeline import execute, plan
from rose.pipeline import graph as graphs
from rose.pipeline.study import load_study
from rose.tasks import get_task

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
    stage_s: dict[str, float] = field(default_factory=dict)  # per kind: seconds its tasks ran (Outcome.seconds)
    overhead_s: dict[str, tuple[float, int]] = field(default_factory=dict)  # per kind: (seconds, worker starts)
    notes: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (task, reason) of the tasks that failed for good
    left: list[str] = field(default_factory=list)  # units still to run when the study ended
    resume: str = ""  # the command that resumes the study

    @property
    def ok(self) -> bool:
        return not self.failed and not self.left

    def time_split(self) -> str:
        """``generate 12 s, train 30 s, evaluate 8 s, score 3 s`` (kinds that ran; the seconds a worker ran their
        tasks, see :meth:`rose.pipeline.execute.Outcome.seconds`)."""
        return ", ".join(f"{stage} {self.stage_s[stage]:.0f} s" for stage in plan.STAGES if stage in self.stage_s)

    def overhead(self) -> str:
        """``generate 9.1 s (1 worker start), train 0.4 s, ...``: per kind, seconds its tasks spent outside the
        units' own work (local executor)."""

        def starts(n: int) -> str:
            return f" ({n} worker start{'s' if n > 1 else ''})" if n else ""

        return ", ".join(f"{stage} {self.overhead_s[stage][0]:.1f} s{starts(self.overhead_s[stage][1])}"
                         for stage in plan.STAGES if stage in self.overhead_s)  # fmt: skip


def run_pipeline(
    config: str | Path,
    *,
    executor: str = "local",
    max_parallel: int = 1,
    dry_run: bool = False,
    ray_address: str | None = None,
    gpus_per_generator: float = 0.0,
    estimate: bool = False,
    unit_seconds: str = "",
    workers: int = 8,
    gpus: float = 0.0,
) -> PipelineResult:
    """Run the study in ``config``; with ``dry_run`` only build and return the plan (and its graph); with
    ``estimate`` too, its cost on ``workers`` CPU slots and ``gpus`` GPUs (:mod:`rose.pipeline.estimate`)."""
    if executor not in EXECUTORS:
        raise RoseError(f"unknown executor {executor!r}: use local or ray")
    if max_parallel < 1:
        raise RoseError("--max-parallel must be 1 or more")
    if gpus_per_generator < 0:
        raise RoseError("--gpus-per-generator must be 0 or more")
    study = load_study(config)  # every check happens here, before anything runs
    # the local workers start now: their imports (torch, Lightning, MLflow) overlap the store's set-up and the plan
    early = execute.LocalPool(max_parallel, prestart=True) if executor == "local" and not dry_run else None
    try:
        tracking.setup(study.experiment)
        first = plan.build(study, plan.Facts.load(study.experiment))
    except BaseException:
        if early is not None:
            early.close()
        raise
    text = plan.describe(first)
    skipped = sum(bool(u.run_id) for u in first.units)
    if dry_run:
        runner = execute.Runner(study, None, gpus_per_generator=gpus_per_generator, cluster_gpus=gpus)
        graph = graphs.describe(graphs.nodes(first), lambda n: runner.resources(n).describe())
        if estimate:
            from rose.pipeline import estimate as cost

            figures = cost.estimate(first, runner.resources, workers=workers, gpus=gpus,
                                    given=cost.parse_seconds(unit_seconds),
                                    measured=cost.store_seconds(tracking.search_runs(study.experiment)))  # fmt: skip
            graph = f"{graph}\n{figures.text()}"
        return PipelineResult(None, f"{text}\n{graph}", study.experiment, skipped=skipped, notes=first.notes)
    log.info("plan of %s:\n%s", config, text)
    for note in first.notes:
        log.warning("%s", note)
    current = {"plan": first}

    def replan() -> plan.Plan:  # when a case's generations are done: its real per-label cut
        current["plan"] = plan.build(study, plan.Facts.load(study.experiment))
        return current["plan"]

    pool = early or execute.pool_for(executor, max_parallel=max_parallel, address=ray_address)  # refusals here
    started = time.perf_counter()
    run_id = _open_pipeline_run(study, text)
    status, outcome, overhead = "FAILED", execute.Outcome(), {}
    try:
        runner = execute.Runner(study, pool, gpus_per_generator=gpus_per_generator, on_ray=executor == "ray")
        outcome = runner.run(replan)
        final = replan()
        status = "FINISHED" if not outcome.failed and all(u.run_id for u in final.units) else "FAILED"
    except KeyboardInterrupt as exc:
        status = "KILLED"
        tracking.record_error(run_id, exc, "interrupted (Ctrl-C or SIGINT)")
        raise
    except Exception as exc:
        tracking.record_error(run_id, exc)
        raise
    finally:
        pool.close()
        overhead = pool.overhead() if hasattr(pool, "overhead") else {}
        final = current["plan"]
        _close_pipeline_run(run_id, status, final.units, skipped, time.perf_counter() - started, outcome.seconds(),
                            final, overhead)  # fmt: skip
    scores = [u.run_id for u in final.units if u.stage == "score" and u.run_id]
    done_before = {u.digest for u in first.units if u.run_id}
    ran = sum(1 for u in final.units if u.run_id and u.digest not in done_before)
    left = [u.label for u in final.units if not u.run_id]
    result = PipelineResult(run_id, text, study.experiment, scores, ran, skipped, time.perf_counter() - started,
                            outcome.seconds(), overhead, final.notes, outcome.failed, left)  # fmt: skip
    if not result.ok:
        result.resume = resume_command(config, executor, max_parallel, ray_address)
        tracking.record_error(run_id, RoseError(f"{len(outcome.failed)} task(s) failed, {len(left)} unit(s) not run"))
    log.info("time per kind of unit (seconds a worker ran them): %s", result.time_split() or "nothing ran")
    if overhead:
        log.info("of which outside the units' own work (worker starts, imports, passing results): %s",
                 result.overhead())  # fmt: skip
    return result


def resume_command(config: str | Path, executor: str, max_parallel: int, ray_address: str | None) -> str:
    """The command that resumes a study (what is done is kept; the rest runs)."""
    parts = ["rose pipeline --config", str(config)]
    if executor != "local":
        parts += ["--executor", executor]
    if ray_address:
        parts += ["--ray-address", ray_address]
    if max_parallel != 1:
        parts += ["--max-parallel", str(max_parallel)]
    return " ".join(parts)


def _open_pipeline_run(study, plan_text: str) -> str:
    """A run that records the study. Not a parent (stage runs stay top-level so they can be found alone), except
    under ``mlflow run``, where it is the run MLflow Projects started and the runs of the study nest in it."""
    import mlflow

    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(study.experiment)
    text = Path(study.path).read_text(encoding="utf-8")
    run_tags = tracking.tags(
        "pipeline",
        ",".join(get_task(t).name for t in study.tasks),
        ",".join(study.languages),
        digest=tracking.digest({"study": text, "tasks": [get_task(t).digest for t in study.tasks]}),
    )
    run = launcher.new_run(exp.experiment_id, run_tags, f"pipeline-{Path(study.path).stem}")
    if launcher.is_launcher(run.info.run_id):  # the run `mlflow run` started: the study's runs nest in it
        os.environ[launcher.PARENT_ENV] = f"{exp.experiment_id}:{run.info.run_id}"
    client.log_text(run.info.run_id, text, "study.yaml")
    client.log_text(run.info.run_id, plan_text, "plan.txt")
    if "candidates" not in run.data.params:
        client.log_param(run.info.run_id, "candidates", ",".join(c.name for c in study.candidates))
    return run.info.run_id


def _close_pipeline_run(run_id: str, status: str, units, skipped: int, wall: float, seconds: dict[str, float],
                        final: plan.Plan, overhead: dict[str, tuple[float, int]] | None = None) -> None:  # fmt: skip
    import mlflow

    client = mlflow.MlflowClient()
    metrics = {"units_total": len(units), "units_skipped": skipped, "wall_time_s": wall}
    metrics.update({f"time/{stage}_s": value for stage, value in seconds.items()})
    metrics.update({f"time/{stage}_overhead_s": value for stage, (value, _) in (overhead or {}).items()})
    for key, value in metrics.items():
        client.log_metric(run_id, key, value)
    if final.notes:
        client.log_text(run_id, "\n".join(final.notes), "notes.txt")
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
    """How to open the study's training runs and classifiers in the MLflow UI."""
    import mlflow

    from rose.mlflow_ui import experiment_url

    uri = tracking.tracking_uri()
    if uri.startswith("sqlite:"):
        cmd = f"mlflow ui --backend-store-uri {uri} --port 5000"
        base = "http://127.0.0.1:5000"
    else:
        cmd, base = "(your tracking server is already running)", uri
    exp = mlflow.MlflowClient().get_experiment_by_name(experiment)
    where = (f"then open {experiment_url(base, exp.experiment_id)} (the experiment '{experiment}': its training "
             f"runs; its classifiers compared on each dataset under Models: "
             f"{experiment_url(base, exp.experiment_id, 'models')})") if exp else f"then open {base}"  # fmt: skip
    return f"Look at the runs: {cmd}\n{where}; the champion classifier is in the model registry."
