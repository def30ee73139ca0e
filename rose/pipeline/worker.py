"""What runs in a worker (a Ray task, or a process of the local executor): one task of the graph.

The worker is given everything it needs in its payload, never by the driver's paths: the units (with their
settings), the run ids of what they read (or the results of the tasks it waited for), the environment (tracking URI
and credentials, ``ROSE_HOME``, hub token, API keys), its resources, its time limit and the file inputs by content
(:mod:`rose.pipeline.shipping`). It sets its threads from the CPUs it asked for (Ray starts workers with
``OMP_NUM_THREADS=1``) and hides the GPUs when it asked for none, so a training runs on the device Ray granted
(``CUDA_VISIBLE_DEVICES``: Lightning's ``cuda:0`` is that device) or on the CPU.

A unit past its time limit is failed: the runs this process holds end FAILED (a retry takes them over) and the
process exits with :data:`TIMEOUT_EXIT`, which Ray counts as a worker death and retries (``max_retries``).

A local executor's worker (:func:`serve`) stays alive across tasks: the imports (torch, Lightning, MLflow) are paid
once, and the models and frozen-trunk states a task loaded stay in its :mod:`model pool <rose.train.pool>` and
:mod:`trunk cache <rose.train.trunk>` for the next task of the same kind (within their bounds). They are released
when it takes another kind of task, and whenever its resident memory after a task passes the driver's bound; it
then reports its memory, and the driver ends a worker still above the bound (:class:`rose.pipeline.execute.LocalPool`).
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

TIMEOUT_EXIT = 124
# environment a worker needs from the driver (besides MLFLOW_TRACKING_URI, always sent)
FORWARD = (
    "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_INSECURE_TLS",
    "MLFLOW_TRACKING_SERVER_CERT_PATH", "MLFLOW_REGISTRY_URI", "MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AZURE_STORAGE_CONNECTION_STRING",
    "ROSE_HOME", "ROSE_LEASE_TIMEOUT", "ROSE_PARENT_RUN_ID", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT", "HF_HUB_OFFLINE",
    "OPENAI_API_KEY", "OPENAI_BASE_URL",
)  # fmt: skip
WORKER_TAGS = ("rose.worker.host", "rose.worker.node", "rose.worker.cuda_visible_devices", "rose.worker.threads")


@dataclass
class Payload:
    experiment: str
    units: list  # rose.pipeline.plan.Unit
    env: dict[str, str]
    known: dict[str, str] = field(default_factory=dict)  # unit digest -> run id of what is done already
    threads: int | None = None  # None: leave the process's threads as they are
    gpus: float = 0.0
    timeout_s: float = 0.0
    shipped: dict[str, Any] = field(default_factory=dict)  # driver path -> shipping.Shipped


def environment(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """The variables to send to workers: the tracking URI (resolved), and those of :data:`FORWARD` and ``extra``
    (e.g. a study's ``api_key_env``) that are set here."""
    from rose import tracking

    env = {"MLFLOW_TRACKING_URI": tracking.tracking_uri()}
    env.update({k: os.environ[k] for k in (*FORWARD, *extra) if os.environ.get(k)})
    return env


def prepare(payload: Payload, *, on_ray: bool) -> None:
    """The process's environment, threads and devices, before torch is imported by the stages."""
    os.environ.update(payload.env)
    if not logging.getLogger().handlers:  # a fresh worker process: log like the driver
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if payload.threads:
        for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[key] = str(payload.threads)
        if "torch" in sys.modules:  # a reused worker: torch read OMP_NUM_THREADS when it was imported
            sys.modules["torch"].set_num_threads(payload.threads)
    if on_ray and not payload.gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # no GPU asked: none used (Lightning trains on the CPU)


def run(payload: Payload, dep_results: tuple = (), *, on_ray: bool = False, get=None, node: str = "local",
        keep_models: bool = False, facts: dict | None = None) -> list[tuple[str, str]]:  # fmt: skip
    """Run one task's units; returns ``(unit digest, run id)`` per unit. ``dep_results``: the results of the
    tasks it waited for; ``get``: fetches a shipped archive (``ray.get``); ``keep_models``: leave the models and
    trunk states the units loaded in this process's pools (a worker that runs more tasks)."""
    prepare(payload, on_ray=on_ray)
    from rose.assets import rose_home
    from rose.errors import RoseError
    from rose.pipeline import plan, shipping

    run_of = dict(payload.known)
    for pairs in dep_results:
        run_of.update(dict(pairs))
    for unit in payload.units:
        if unit.needs and not plan.fill(unit, run_of):
            raise RoseError(f"cannot run {unit.label}: a unit it reads did not finish")
    if payload.shipped:
        shipping.rewrite(payload.units, shipping.unpack(payload.shipped, rose_home(), get))
    if payload.threads and "torch" not in sys.modules:
        import torch

        torch.set_num_threads(payload.threads)
    from rose.pipeline import stages

    done = threading.Event()
    if payload.timeout_s:
        labels = "; ".join(u.label for u in payload.units)
        threading.Thread(target=_watchdog, args=(done, payload.timeout_s, labels), daemon=True).start()
    started = time.perf_counter()
    try:
        pairs = stages.run_units(payload.experiment, payload.units, release=not keep_models)
    except RoseError as exc:  # subclasses may not survive pickling back to the driver
        raise RoseError(str(exc)) from None
    finally:
        done.set()
        if facts is not None:
            facts["unit_s"] = time.perf_counter() - started
    _tag_worker([run_id for _, run_id in pairs], payload.threads, node)
    return pairs


def _watchdog(done: threading.Event, limit: float, labels: str) -> None:
    if done.wait(limit):
        return
    from rose import lease

    reason = f"past its time limit of {limit:g} s: {labels}"
    log.error("%s: failing its runs and ending this worker", reason)
    lease.fail_held(reason)
    logging.shutdown()
    os._exit(TIMEOUT_EXIT)


def _tag_worker(run_ids: list[str], threads: int | None, node: str) -> None:
    """Say on each run where it ran: host, Ray node, the GPUs it saw (``CUDA_VISIBLE_DEVICES``), its threads."""
    import mlflow

    client = mlflow.MlflowClient()
    gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
    values = (socket.gethostname(), node, "(all)" if gpus is None else gpus or "none", str(threads or "default"))
    for run_id in run_ids:
        for key, value in zip(WORKER_TAGS, values, strict=True):
            client.set_tag(run_id, key, value)


def ray_task(payload: Payload, *dep_results) -> list[tuple[str, str]]:
    """The Ray task of a node (dependencies arrive as the results of the tasks it waited for)."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    return run(payload, dep_results, on_ray=True, get=ray.get, node=node)


def _failure(exc: BaseException) -> tuple[str, str]:
    from rose.errors import RoseError

    if isinstance(exc, RoseError):
        return "rose", str(exc)
    return "error", f"{type(exc).__name__}: {exc}"


def serve(conn, max_bytes: int) -> None:
    """A local executor's worker: runs the tasks it receives through ``conn`` one after another until it receives
    None (or the driver goes). Each answer is ``(status, value, facts)``: status ``ok`` (value: the task's pairs)
    or ``rose``/``error`` (value: the one-line reason); facts: ``rss`` (resident bytes after the task, after
    releasing the pools when it was above ``max_bytes``), ``unit_s`` (seconds inside the stages' own code)."""
    try:  # the stages' imports (torch, Lightning, MLflow) now, while the driver is still planning
        import rose.pipeline.stages  # noqa: F401
    except Exception:  # noqa: BLE001 - the first task meets the same error and reports it
        pass
    kind = None
    while True:
        try:
            payload = conn.recv()
        except (EOFError, OSError):
            return
        if payload is None:
            break
        if kind is not None and payload.units[0].stage != kind:
            release()  # another kind of task: what the last kind loaded is not what this one needs
        kind = payload.units[0].stage
        facts: dict[str, float] = {}
        interrupted = False
        try:
            answer = ("ok", run(payload, keep_models=True, facts=facts))
        except BaseException as exc:  # noqa: BLE001 - the driver decides; it needs the reason
            answer = _failure(exc)
            interrupted = isinstance(exc, KeyboardInterrupt | SystemExit)
        rss = resident_bytes()
        if rss > max_bytes:
            release()
            rss = resident_bytes()
        conn.send((*answer, {**facts, "rss": rss}))
        if interrupted:
            break
    conn.close()


def release() -> None:
    """Give back the models and trunk states this process keeps, and what the allocators hold of them."""
    if "rose.train.pool" in sys.modules:
        sys.modules["rose.train.pool"].pool().clear()
    if "rose.train.trunk" in sys.modules:
        sys.modules["rose.train.trunk"].cache().clear()
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    try:  # glibc keeps freed memory in its arenas; give it back to the system
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def resident_bytes() -> int:
    """This process's resident memory (0 where it cannot be read)."""
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        pass
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
