"""Running a plan: stage by stage, in this process, in a pool of worker processes, or as Ray tasks.

Workers write to the same tracking store (``MLFLOW_TRACKING_URI``); with several writers, use a tracking
server (``mlflow server``) rather than a SQLite file.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor, as_completed

from rose.errors import RoseError
from rose.pipeline.plan import Unit

log = logging.getLogger(__name__)
STAGE_ORDER = ("generate", "train", "score")


def _work(payload: tuple) -> tuple[str, str]:
    """Run one unit (in any process); returns (unit digest, run id)."""
    from rose.pipeline import stages

    study_path, unit_digest, env = payload
    os.environ.update(env)
    if not logging.getLogger().handlers:  # a fresh worker process: log like the driver
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        return unit_digest, stages.run_unit(study_path, unit_digest)
    except RoseError as exc:  # subclasses may not survive pickling back to the driver
        raise RoseError(str(exc)) from None


def _env() -> dict[str, str]:
    from rose.tracking import tracking_uri

    return {"MLFLOW_TRACKING_URI": tracking_uri()}


def run_local(study_path: str, units: list[Unit], max_parallel: int = 1) -> None:
    """Run the units that are not done, stage after stage; up to ``max_parallel`` at once within a stage.

    Each unit runs in a fresh worker process that ends with it, so the memory a generator or a classifier
    took is given back before the next unit starts (and a crash in one unit cannot corrupt the driver).
    """
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch or MLflow state
    for stage in STAGE_ORDER:
        todo = [u for u in units if u.stage == stage and not u.run_id]
        if not todo:
            continue
        log.info("%s: %d unit(s) to run", stage, len(todo))
        with ProcessPoolExecutor(max_workers=max_parallel, mp_context=ctx, max_tasks_per_child=1) as pool:
            futures = {}
            for unit in todo:
                log.info("queued %s", unit.label)
                futures[pool.submit(_work, (study_path, unit.digest, _env()))] = unit
            for future in as_completed(futures):
                unit = futures[future]
                _, unit.run_id = future.result()
                log.info("finished %s -> run %s", unit.label, unit.run_id)


def run_ray(study_path: str, units: list[Unit], address: str | None = None, gpus_per_generator: float = 0) -> None:
    """Run the same plan as Ray tasks: generation per candidate (with the GPUs it asks for), training per
    candidate, scoring last. All tasks log to the tracking URI of the driver, which must be reachable
    from the workers (a tracking server for a real cluster)."""
    try:
        import ray
    except ImportError:
        raise RoseError("ray is not installed: run `pip install 'rose[ray]'` or use --executor local") from None
    env = _env()
    if not ray.is_initialized():
        ray.init(address=address, runtime_env={"env_vars": env}, include_dashboard=False, log_to_driver=True)
    remote = ray.remote(_work)
    for stage in STAGE_ORDER:
        todo = [u for u in units if u.stage == stage and not u.run_id]
        if not todo:
            continue
        gpus = gpus_per_generator if stage == "generate" else 0
        refs = {remote.options(num_gpus=gpus, max_retries=1).remote((study_path, u.digest, env)): u for u in todo}
        for ref, unit in refs.items():
            _, unit.run_id = ray.get(ref)
            log.info("finished %s -> run %s", unit.label, unit.run_id)
