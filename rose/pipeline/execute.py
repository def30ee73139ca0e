"""Running a plan: stage by stage, in this process's worker pool (fresh processes) or as Ray tasks.

Before each stage the plan is built again from the tracking store, so a unit reads the runs the stages before
it made (and the per-label cut, known once generation is done, is the real one). Evaluate units of one train unit
run together (each seed model is loaded once), and the local executor deals the cells into ``max_parallel``
workers (a worker process costs seconds to start). Workers write to the same tracking store
(``MLFLOW_TRACKING_URI``); with several writers, use a tracking server rather than a SQLite file.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed

from rose import tracking
from rose.errors import RoseError
from rose.pipeline import stages
from rose.pipeline.plan import STAGES, Plan, Unit

log = logging.getLogger(__name__)


def _work(payload: tuple) -> list[tuple[str, str]]:
    """Run a batch of units (in any process); returns (unit digest, run id) pairs."""
    study_path, units, env = payload
    os.environ.update(env)
    if not logging.getLogger().handlers:  # a fresh worker process: log like the driver
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        return stages.run_units(study_path, units)
    except RoseError as exc:  # subclasses may not survive pickling back to the driver
        raise RoseError(str(exc)) from None


def _env() -> dict[str, str]:
    return {"MLFLOW_TRACKING_URI": tracking.tracking_uri()}


def batches(plan: Plan, stage: str, workers: int = 0) -> list[list[Unit]]:
    """The stage's units still to run, grouped: the cells of one train unit together (with ``workers``, the
    cells are dealt into that many batches, so a worker process starts once per batch, not per classifier);
    other units alone."""
    todo = [u for u in plan.units if u.stage == stage and not u.run_id]
    missing = [u.label for u in todo if u.needs and not u.inputs]
    if missing:
        raise RoseError(f"cannot run {missing[0]}: a unit it reads did not finish")
    if stage != "evaluate":
        return [[u] for u in todo]
    groups: dict[str, list[Unit]] = {}
    for unit in todo:
        groups.setdefault(unit.inputs["train"], []).append(unit)
    if not workers:
        return list(groups.values())
    dealt: list[list[Unit]] = [[] for _ in range(min(workers, len(groups)))]
    for i, group in enumerate(groups.values()):
        dealt[i % len(dealt)].extend(group)
    return dealt


def run_local(study_path: str, replan: Callable[[], Plan], max_parallel: int = 1) -> dict[str, float]:
    """Run the units that are not done, stage after stage; up to ``max_parallel`` batches at once within a stage.

    Each batch runs in a fresh worker process that ends with it, so the memory a generator or a classifier took is
    given back before the next one starts (and a crash in one unit cannot corrupt the driver). Returns the seconds
    each stage took.
    """
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch or MLflow state
    seconds: dict[str, float] = {}
    for stage in STAGES:
        todo = batches(replan(), stage, workers=max_parallel)
        if not todo:
            continue
        start = time.perf_counter()
        log.info("%s: %d unit(s) to run", stage, sum(map(len, todo)))
        with ProcessPoolExecutor(max_workers=max_parallel, mp_context=ctx, max_tasks_per_child=1) as pool:
            futures = {}
            for batch in todo:
                for unit in batch:
                    log.info("queued %s", unit.label)
                futures[pool.submit(_work, (study_path, batch, _env()))] = batch
            for future in as_completed(futures):
                for unit, (_, run_id) in zip(futures[future], future.result(), strict=True):
                    unit.run_id = run_id
                    log.info("finished %s -> run %s", unit.label, run_id)
        seconds[stage] = time.perf_counter() - start
    return seconds


def run_ray(study_path: str, replan: Callable[[], Plan], address: str | None = None,
            gpus_per_generator: float = 0) -> dict[str, float]:  # fmt: skip
    """Run the same plan as Ray tasks: generation per candidate (with the GPUs it asks for), training per
    candidate, the cells per train unit, scoring last. All tasks log to the tracking URI of the driver, which must
    be reachable from the workers (a tracking server for a real cluster)."""
    try:
        import ray
    except ImportError:
        raise RoseError("ray is not installed: run `pip install 'rose[ray]'` or use --executor local") from None
    env = _env()
    if not ray.is_initialized():
        ray.init(address=address, runtime_env={"env_vars": env}, include_dashboard=False, log_to_driver=True)
    remote = ray.remote(_work)
    seconds: dict[str, float] = {}
    for stage in STAGES:
        todo = batches(replan(), stage)
        if not todo:
            continue
        start = time.perf_counter()
        gpus = gpus_per_generator if stage == "generate" else 0
        refs = {remote.options(num_gpus=gpus, max_retries=1).remote((study_path, b, env)): b for b in todo}
        for ref, batch in refs.items():
            for unit, (_, run_id) in zip(batch, ray.get(ref), strict=True):
                unit.run_id = run_id
                log.info("finished %s -> run %s", unit.label, run_id)
        seconds[stage] = time.perf_counter() - start
    return seconds
