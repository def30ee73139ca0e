"""What runs in a worker (a Ray task, or a process of the local executor): one task of the graph.

The worker is given everything it needs in its payload, never by the driver's paths: the units (with their
settings), the run ids of what they read (or the results of the tasks it waited for), the environment (tracking URI
and credentials, ``ROSE_HOME``, hub token, API keys), its resources, its time limit and the file inputs by content
(:mod:`rose.pipeline.shipping`). It sets its threads from the CPUs it asked for (Ray starts workers with
``OMP_NUM_THREADS=1``) and hides the GPUs when it asked for none, so a training runs on the device Ray granted
(``CUDA_VISIBLE_DEVICES``: Lightning's ``cuda:0`` is that device) or on the CPU.

A unit past its time limit is failed: the runs this process holds end FAILED (a retry takes them over) and the
process exits with :data:`TIMEOUT_EXIT`, which Ray counts as a worker death and retries (``max_retries``).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
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


def run(payload: Payload, dep_results: tuple = (), *, on_ray: bool = False, get=None,
        node: str = "local") -> list[tuple[str, str]]:  # fmt: skip
    """Run one task's units; returns ``(unit digest, run id)`` per unit. ``dep_results``: the results of the
    tasks it waited for; ``get``: fetches a shipped archive (``ray.get``)."""
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
    try:
        pairs = stages.run_units(payload.experiment, payload.units)
    except RoseError as exc:  # subclasses may not survive pickling back to the driver
        raise RoseError(str(exc)) from None
    finally:
        done.set()
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


def child(payload: Payload, conn) -> None:
    """A local executor's process: the result (or the one-line error) goes back through ``conn``."""
    try:
        conn.send(("ok", run(payload)))
    except BaseException as exc:  # noqa: BLE001 - the driver decides; it needs the reason
        from rose.errors import RoseError

        conn.send(("rose" if isinstance(exc, RoseError) else "error", f"{type(exc).__name__}: {exc}"
                   if not isinstance(exc, RoseError) else str(exc)))  # fmt: skip
    finally:
        conn.close()
