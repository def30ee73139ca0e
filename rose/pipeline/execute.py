"""Running a plan as a graph: every task starts when what it reads is done, locally or as Ray tasks.

The driver holds the graph (:mod:`rose.pipeline.graph`). Generations of every case start at once; when the last
generation of a case is done, the plan of that case is built again from the tracking store (its per-label cut is
then the real one) and its trainings, cells and score join the graph: a case's trainings wait for that case's
generations only, a train unit's cells for that training, a score for its case's trainings and cells.

- Ray (:class:`RayPool`): a task is submitted as soon as the tasks it waits for are submitted, with their object
  references as arguments, so Ray starts it when they are done; ``ray.wait`` reports progress. Each task asks for
  the resources of its kind of unit (:mod:`rose.pipeline.resources`); GPU generation tasks run in a fresh worker
  (``max_calls=1``). File inputs travel by content (:mod:`rose.pipeline.shipping`); the environment a worker needs
  travels in its payload (:mod:`rose.pipeline.worker`).
- Local (:class:`LocalPool`): up to ``max_parallel`` tasks at once, each in a worker process (a crash cannot
  corrupt the driver); a task is started when the tasks it waits for are done. A worker runs task after task (its
  imports paid once, models of one kind of task kept loaded, :func:`rose.pipeline.worker.serve`) while its resident
  memory after a task stays within ``ROSE_WORKER_MAX_MB`` (default 2048); above it, or after a task that failed,
  or a generation on a GPU, it is ended and the next task starts a fresh one. The log says per kind of task how
  many seconds went outside the units' own work (worker starts, imports, passing results).

Faults: a task whose worker dies (or that passes its time limit) is retried up to ``max_retries`` times; a task that
fails for good leaves every task that does not depend on it running to its end, and the study ends listing what
failed (:class:`Outcome`). Workers write to the same tracking store; with several nodes it must be a server.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from typing import Any

from rose import tracking
from rose.errors import RoseError
from rose.pipeline import graph as graphs
from rose.pipeline import resources as unit_resources
from rose.pipeline import worker
from rose.pipeline.plan import Plan
from rose.pipeline.study import Study

log = logging.getLogger(__name__)


class UnitFailed(RoseError):
    """A task that failed for good (after its retries)."""


@dataclass
class Outcome:
    """What a run of the graph did: run ids of the units that ran, what failed (and why), what was left out."""

    ran: dict[str, str] = field(default_factory=dict)  # unit digest -> run id
    failed: list[tuple[str, str]] = field(default_factory=list)  # (task label, reason)
    skipped: list[str] = field(default_factory=list)  # labels of units not run because what they need failed
    spans: dict[str, list[float]] = field(default_factory=dict)  # kind -> [first start, last end] (driver clock)
    busy: dict[str, float] = field(default_factory=dict)  # kind -> seconds a worker ran its tasks (local pool)

    def seconds(self) -> dict[str, float]:
        """Per kind of task: the seconds some worker was running one (the local pool: the union of the times from
        sending a task to its answer, so a task waiting for a free worker is not counted); on Ray, from the first
        task's submission to the last one's end (tasks are submitted before they can start)."""
        if self.busy:
            return dict(self.busy)
        return {kind: end - start for kind, (start, end) in self.spans.items()}


def union_seconds(intervals: list[tuple[float, float]]) -> float:
    """The length of the union of ``(start, end)`` intervals."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


# --- where tasks run ------------------------------------------------------------------------------------------
class LocalPool:
    """Tasks in worker processes kept across tasks, ``max_parallel`` at once; a task is submitted once its needs
    are done. ``max_worker_mb``: the resident memory above which a worker is ended after its task (default
    ``ROSE_WORKER_MAX_MB`` or 2048); ``prestart``: start the ``max_parallel`` workers now (they import the stages'
    modules while the driver plans; ``rose pipeline`` does)."""

    eager = False

    def __init__(self, max_parallel: int = 1, *, max_worker_mb: int | None = None, prestart: bool = False):
        self._threads = ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="rose-unit")
        mb = max_worker_mb if max_worker_mb is not None else int(os.environ.get("ROSE_WORKER_MAX_MB", "2048"))
        self.max_worker_bytes = mb << 20
        self._idle: list[_Worker] = []
        self._live: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        self.history: list[tuple[str, int]] = []  # (task labels, pid of the worker that answered), in order
        self.started = 0  # worker processes started
        self.intervals: dict[str, list[tuple[float, float]]] = {}  # per kind: (sent, answered) of every task
        # per kind of task: seconds inside the units' own code, worker starts
        self.spent: dict[str, list[float]] = {}
        atexit.register(self.close)
        if prestart:  # started before the first task is known, so they import while the driver plans
            with self._lock:
                self._idle.extend(self._spawn() for _ in range(max_parallel))

    def submit(self, payload: worker.Payload, res: unit_resources.Resources, deps: list) -> Future:
        return self._threads.submit(self._run, payload, res)

    def wait(self, handles: list, timeout: float) -> list:
        done, _ = wait_futures(handles, timeout=timeout, return_when=FIRST_COMPLETED)
        return list(done)

    def result(self, handle: Future) -> list[tuple[str, str]]:
        return handle.result()

    def close(self) -> None:
        self._threads.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            self._closed = True
            workers, self._idle, self._live = list(self._live), [], set()
        for w in workers:
            w.stop()
        atexit.unregister(self.close)

    def overhead(self) -> dict[str, tuple[float, int]]:
        """Per kind of task: seconds outside the units' own work (worker starts, imports, passing results), and
        how many worker processes started for it."""
        return {kind: (max(0.0, sum(end - start for start, end in self.intervals.get(kind, ())) - inside),
                       int(starts)) for kind, (inside, starts) in self.spent.items()}  # fmt: skip

    def _spawn(self) -> _Worker:
        """A new worker process, counted and live (call with the lock held)."""
        w = _Worker(self.max_worker_bytes)
        self._live.add(w)
        self.started += 1
        return w

    def _take(self) -> tuple[_Worker, bool]:
        with self._lock:
            if self._closed:
                raise UnitFailed("the pool is closed")
            if self._idle:
                w = self._idle.pop()
                fresh, w.used = not w.used, True  # a prestarted worker's first task counts its start
                return w, fresh
            w = self._spawn()
            w.used = True
            return w, True

    def _keep(self, w: _Worker, keep: bool) -> None:
        with self._lock:
            keep = keep and not self._closed
            if keep:
                self._idle.append(w)
            else:
                self._live.discard(w)
        if not keep:
            w.stop()

    def _run(self, payload: worker.Payload, res: unit_resources.Resources) -> list[tuple[str, str]]:
        """Run a task in a worker; a worker that dies (or passes its time limit) is ended and the task tried again
        in a fresh one."""
        kind = payload.units[0].stage
        reason = ""
        for attempt in range(res.max_retries + 1):
            w, fresh = self._take()
            sent = time.perf_counter()
            answer = w.ask(payload)
            with self._lock:
                answered = time.perf_counter()
                self.intervals.setdefault(kind, []).append((sent, answered))
                spent = self.spent.setdefault(kind, [0.0, 0])
                spent[1] += int(fresh)
                if answer is not None:
                    spent[0] += float(answer[2].get("unit_s", 0.0))
            if answer is None:  # the worker ended without answering (killed, crashed, past its time limit)
                with self._lock:
                    self._live.discard(w)
                code = w.end()
                reason = (f"past its time limit of {res.timeout_s:g} s" if code == worker.TIMEOUT_EXIT
                          else f"its worker process died (exit code {code})")  # fmt: skip
                if attempt < res.max_retries:
                    log.warning("%s: %s; trying again in a fresh worker (%d of %d retries)", _labels(payload),
                                reason, attempt + 1, res.max_retries)  # fmt: skip
                continue
            status, value, facts = answer
            self.history.append((_labels(payload), w.pid))
            rss = int(facts.get("rss", 0))
            fresh_only = kind == "generate" and res.gpus > 0  # the model's GPU memory ends with its unit
            if rss > self.max_worker_bytes:
                log.info("ending worker %d: %d MB resident after %s (bound %d MB)", w.pid, rss >> 20,
                         _labels(payload), self.max_worker_bytes >> 20)  # fmt: skip
            self._keep(w, status == "ok" and not fresh_only and rss <= self.max_worker_bytes)
            if status == "ok":
                return value
            raise UnitFailed(value)  # an error of the unit itself: the same inputs fail the same way
        raise UnitFailed(f"{reason}, {res.max_retries} retr{'y' if res.max_retries == 1 else 'ies'} used")


class _Worker:
    """A worker process of the local pool and the pipe to it."""

    def __init__(self, max_bytes: int):
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch or MLflow state
        self.conn, theirs = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=worker.serve, args=(theirs, max_bytes), daemon=False)
        self.process.start()
        theirs.close()
        self.pid = self.process.pid
        self.used = False  # has it been given a task

    def ask(self, payload: worker.Payload):
        """The worker's answer to a task, or None when it ended without one."""
        try:
            self.conn.send(payload)
            return self.conn.recv()
        except (EOFError, OSError):
            return None

    def end(self) -> int | None:
        """Wait for a worker that ended; its exit code."""
        self.process.join()
        self.conn.close()
        return self.process.exitcode

    def stop(self) -> None:
        """Ask the worker to end, and end it if it does not (at once when it never had a task: it may still be
        importing)."""
        if not self.used:
            self.process.terminate()
            self.process.join(timeout=10)
            self.conn.close()
            return
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass
        self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=10)
        self.conn.close()


def _in_process(payload: worker.Payload, res: unit_resources.Resources) -> list[tuple[str, str]]:
    """Run a task in a worker of its own, ended afterwards (tried again in a fresh one when it dies)."""
    pool = LocalPool(1)
    try:
        return pool._run(payload, res)
    finally:
        pool.close()


class RayPool:
    """Tasks on a Ray cluster; a task is submitted with the object references of the tasks it waits for."""

    eager = True

    def __init__(self, address: str | None, uri: str):
        try:
            import ray
        except ImportError:
            raise RoseError("ray is not installed: run `pip install 'rose[ray]'` or use --executor local") from None
        self.ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            ray.init(address=address, include_dashboard=False, log_to_driver=True)
        alive = [n for n in ray.nodes() if n.get("Alive")]
        local_store = uri.startswith(("sqlite:", "file:")) or "://" not in uri
        if len(alive) > 1 and local_store:
            self.close()
            raise RoseError(f"the tracking store {uri} is a file on this machine and the Ray cluster has "
                            f"{len(alive)} nodes: start a tracking server (`mlflow server ...`) and set "
                            "MLFLOW_TRACKING_URI to it")  # fmt: skip
        self.gpus = float(ray.cluster_resources().get("GPU", 0))
        self._remote = ray.remote(worker.ray_task)

    def put(self, blob: bytes) -> Any:
        return self.ray.put(blob)

    def submit(self, payload: worker.Payload, res: unit_resources.Resources, deps: list) -> Any:
        kind = payload.units[0].stage
        return self._remote.options(**res.ray_options(kind)).remote(payload, *deps)

    def wait(self, handles: list, timeout: float) -> list:
        ready, _ = self.ray.wait(handles, num_returns=len(handles), timeout=timeout, fetch_local=False)
        if not ready:  # ray.wait returns what is ready when the timeout passes, at least one when it can
            ready, _ = self.ray.wait(handles, num_returns=1, timeout=timeout, fetch_local=False)
        return ready

    def result(self, handle: Any) -> list[tuple[str, str]]:
        try:
            return self.ray.get(handle)
        except self.ray.exceptions.RayTaskError as exc:
            cause = exc.as_instanceof_cause() if hasattr(exc, "as_instanceof_cause") else exc
            raise UnitFailed(_first_line(getattr(exc, "cause", None) or cause)) from None
        except (self.ray.exceptions.WorkerCrashedError, self.ray.exceptions.RayError) as exc:
            raise UnitFailed(f"its worker died ({_first_line(exc)}), retries used") from None

    def close(self) -> None:
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if "Traceback" in text else lines[0]


def _labels(payload: worker.Payload) -> str:
    return "; ".join(u.label for u in payload.units)


# --- the graph ------------------------------------------------------------------------------------------------
class Runner:
    """Builds each task's payload (resources, environment, file inputs) and runs the graph on a pool."""

    def __init__(self, study: Study, pool, *, gpus_per_generator: float = 0.0, on_ray: bool = False,
                 cluster_gpus: float | None = None):  # fmt: skip
        self.study, self.pool, self.on_ray = study, pool, on_ray
        self.cluster_gpus = getattr(pool, "gpus", 0.0) if cluster_gpus is None else cluster_gpus
        self.gpus_per_generator = gpus_per_generator or None
        keys = {str(s.get("api_key_env")) for s in [study.generate] if s.get("api_key_env")}
        self.env = worker.environment(tuple(keys))
        self.shipped: dict[str, Any] = {}

    def resources(self, node: graphs.Node) -> unit_resources.Resources:
        unit = node.units[0]
        backend = None if unit.candidate is not None and unit.candidate.imported else unit.settings.get("backend")
        return unit_resources.for_unit(node.kind, backend, self.study.resources,
                                       cluster_gpus=self.cluster_gpus,
                                       gpus_per_generator=self.gpus_per_generator)  # fmt: skip

    def payload(self, node: graphs.Node, known: dict[str, str]) -> worker.Payload:
        res = self.resources(node)
        threads = res.threads if self.on_ray or "cpus" in self.study.resources.get(node.kind, {}) else None
        shipped = {p: s for p, s in self.shipped.items() if p in _named(node)} if self.on_ray else {}
        wanted = {d for u in node.units for d in u.needs}
        return worker.Payload(self.study.experiment, node.units, self.env, {d: known[d] for d in wanted if d in known},
                              threads, res.gpus, res.timeout_s, shipped)  # fmt: skip

    def run(self, replan: Callable[[], Plan]) -> Outcome:
        plan = replan()
        if self.on_ray:  # every file input the study names, packed once now: nothing is read from here later
            from rose.pipeline import shipping

            self.shipped = shipping.ship(plan.units, self.study.cases(), self.pool.put)
        names: Counter = Counter()
        known = {u.digest: u.run_id for u in plan.units if u.run_id}
        graph = graphs.nodes(plan, names=names)
        log.info("%s", graphs.describe(graph, lambda n: self.resources(n).describe()))
        pending_gens: dict[tuple[str, str], set[str]] = {}
        for node in graph:
            if node.kind == "generate":
                pending_gens.setdefault(node.case, set()).add(node.key)
        queue = [n for n in graph if n.kind == "generate" or n.case not in pending_gens]
        return self._loop(queue, pending_gens, known, replan, names)

    def _loop(self, queue, pending_gens, known, replan, names) -> Outcome:
        out = Outcome()
        state: dict[str, str] = {}  # node key -> submitted / ok / failed / skipped
        handles: dict[str, Any] = {}  # node key -> its pool handle
        node_of: dict[Any, graphs.Node] = {}  # pool handle -> node
        order: dict[str, int] = {}  # node key -> position (needs come first)
        by_key: dict[str, graphs.Node] = {}
        waiting: list[graphs.Node] = []
        total = finished = 0

        def enqueue(new: list[graphs.Node]) -> None:
            nonlocal total
            for node in new:
                by_key[node.key], order[node.key] = node, len(order)
                waiting.append(node)
                total += len(node.units)

        enqueue(queue)
        while True:
            for node in list(waiting):
                needs = [state.get(k) for k in node.needs]
                if any(s in ("failed", "skipped") for s in needs):
                    waiting.remove(node)
                    state[node.key] = "skipped"
                    out.skipped += [u.label for u in node.units]
                    log.warning("not running %s %s: a task it waits for failed", node.name, node.label)
                    continue
                if not (all(s == "ok" for s in needs) or (self.pool.eager and None not in needs)):
                    continue
                waiting.remove(node)
                deps = [handles[k] for k in node.needs] if self.pool.eager else []
                handle = self.pool.submit(self.payload(node, known), self.resources(node), deps)
                handles[node.key], node_of[handle], state[node.key] = handle, node, "submitted"
                now = time.perf_counter()
                out.spans.setdefault(node.kind, [now, now])
                log.info("queued %s %s%s", node.name, node.label,
                         f"  <- {' '.join(by_key[k].name for k in node.needs)}" if node.needs else "")  # fmt: skip
            running = [h for h, n in node_of.items() if state[n.key] == "submitted"]
            if not running:
                break
            for handle in sorted(self.pool.wait(running, 30.0), key=lambda h: order[node_of[h].key]):
                node = node_of[handle]
                try:
                    pairs = self.pool.result(handle)
                except Exception as exc:  # noqa: BLE001 - a unit's failure must not stop the others
                    if any(state.get(k) in ("failed", "skipped") for k in node.needs):
                        state[node.key] = "skipped"
                        out.skipped += [u.label for u in node.units]
                        continue
                    state[node.key] = "failed"
                    reason = str(exc) if isinstance(exc, RoseError) else _first_line(exc)
                    limit = self.resources(node).timeout_s
                    if "worker died" in reason and limit:
                        reason += f" (a crash, lost memory, or past its time limit of {limit:g} s)"
                    out.failed.append((f"{node.name} {node.label}", reason))
                    log.error("FAILED %s %s: %s", node.name, node.label, reason)
                    continue
                state[node.key] = "ok"
                finished += len(node.units)
                out.spans[node.kind][1] = time.perf_counter()
                for digest, run_id in pairs:
                    known[digest] = out.ran[digest] = run_id
                log.info("finished %s %s -> run%s %s [%d/%d units]", node.name, node.label,
                         "s" if len(pairs) > 1 else "", ", ".join(r for _, r in pairs), finished, total)  # fmt: skip
                if node.kind == "generate":
                    enqueue(self._expand(node, pending_gens, state, known, replan, names))
        intervals = getattr(self.pool, "intervals", None)
        if intervals:
            out.busy = {kind: union_seconds(spans) for kind, spans in intervals.items()}
        return out

    def _expand(self, node, pending_gens, state, known, replan, names) -> list[graphs.Node]:
        """When a case's last generation is done: that case's plan again (its cut), its other tasks."""
        waiting = pending_gens.get(node.case, set())
        if any(state.get(k) != "ok" for k in waiting):
            return []
        plan = replan()
        known.update({u.digest: u.run_id for u in plan.units if u.run_id})
        new = graphs.nodes(plan, {node.case}, names=names)
        cut = next((u.settings.get("per_label") for u in plan.units if u.stage == "train"
                    and (u.task, u.language) == node.case), None)  # fmt: skip
        log.info("%s/%s: every generation is done (per-label cut %s); its tasks:\n%s", *node.case, cut,
                 graphs.describe(new, lambda n: self.resources(n).describe()))  # fmt: skip
        pending_gens.pop(node.case, None)
        return new


def _named(node: graphs.Node) -> set[str]:
    from rose.pipeline import shipping

    return shipping.named_paths(node.units)


def pool_for(executor: str, *, max_parallel: int = 1, address: str | None = None):
    """The pool that runs tasks: ``local`` (processes here) or ``ray`` (a cluster; refused with a file store and
    several nodes, before anything runs)."""
    if executor == "ray":
        return RayPool(address, tracking.tracking_uri())
    return LocalPool(max_parallel)
