"""A study's cost before it runs: the work per kind of unit and its expected wall time on N workers and G GPUs.

Seconds per unit come from the tracking store (the median duration of the finished runs of each kind in the
study's experiment: a train unit is its parent run, all its seeds; a cell is one evaluate run) or are given
(``--unit-seconds train=900,evaluate=20``; given figures win). The wall time is a simulation of the graph
(:mod:`rose.pipeline.graph`): each task starts as soon as what it waits for is done and its resources
(:mod:`rose.pipeline.resources`) are free, on ``workers`` CPU slots and ``gpus`` GPUs, first ready first served.
"""

from __future__ import annotations

import heapq
import statistics
from collections import Counter
from dataclasses import dataclass

from rose.errors import RoseError
from rose.pipeline import graph as graphs
from rose.pipeline.plan import STAGES, Plan
from rose.pipeline.resources import Resources


@dataclass
class Estimate:
    units: dict[str, int]  # units to run per kind
    seconds: dict[str, float]  # seconds per unit, per kind
    source: dict[str, str]  # where each figure came from: "store (n runs)" or "given"
    workers: int
    gpus: float
    wall_s: float
    critical_s: float  # the longest chain of tasks (the wall time with unlimited workers)

    def work_s(self, kind: str) -> float:
        return self.units.get(kind, 0) * self.seconds.get(kind, 0.0)

    def text(self) -> str:
        lines = [f"estimate ({self.workers} workers, {self.gpus:g} GPUs):",
                 f"  {'kind':<9} {'units':>7} {'s/unit':>8} {'work (h)':>9}  figure from"]  # fmt: skip
        for kind in STAGES:
            if self.units.get(kind):
                lines.append(f"  {kind:<9} {self.units[kind]:>7} {self.seconds[kind]:>8.0f} "
                             f"{self.work_s(kind) / 3600:>9.1f}  {self.source[kind]}")  # fmt: skip
        total = sum(self.work_s(k) for k in STAGES)
        lines.append(f"  total work {total / 3600:.1f} h; expected wall time {self.wall_s / 3600:.1f} h "
                     f"(longest chain {self.critical_s / 3600:.1f} h)")  # fmt: skip
        return "\n".join(lines)


def parse_seconds(text: str) -> dict[str, float]:
    """``generate=600,train=900`` -> seconds per unit of each kind."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        kind, _, value = part.partition("=")
        if kind.strip() not in STAGES:
            raise RoseError(f"--unit-seconds: unknown kind {kind.strip()!r}: use {', '.join(STAGES)}")
        try:
            out[kind.strip()] = float(value)
        except ValueError:
            raise RoseError(f"--unit-seconds: {part!r} is not kind=seconds (e.g. train=900)") from None
        if out[kind.strip()] < 0:
            raise RoseError(f"--unit-seconds: {part!r}: seconds are 0 or more")
    return out


def store_seconds(runs: list) -> dict[str, tuple[float, int]]:
    """Median seconds per unit of each kind among finished runs (train: parents), with how many runs."""
    spans: dict[str, list[float]] = {}
    for run in runs:
        tags = run.data.tags
        kind = tags.get("rose.stage")
        if kind not in STAGES or tags.get("rose.role") == "seed" or not run.info.end_time:
            continue
        spans.setdefault(kind, []).append((run.info.end_time - run.info.start_time) / 1000)
    return {k: (statistics.median(v), len(v)) for k, v in spans.items()}


def estimate(plan: Plan, resources, *, workers: int, gpus: float, given: dict[str, float],
             measured: dict[str, tuple[float, int]]) -> Estimate:  # fmt: skip
    """The work and expected wall time of the units still to run (``resources(node) -> Resources``)."""
    nodes = graphs.nodes(plan)
    units = Counter(u.stage for n in nodes for u in n.units)
    seconds, source = {}, {}
    for kind in units:
        if kind in given:
            seconds[kind], source[kind] = given[kind], "given"
        elif kind in measured:
            seconds[kind], source[kind] = measured[kind][0], f"store (median of {measured[kind][1]} runs)"
        else:
            raise RoseError(f"no timing for {kind} units in the tracking store: give one (--unit-seconds "
                            f"{kind}=SECONDS)")  # fmt: skip
    needs = {n.key: [resources(n), len(n.units) * seconds[n.kind]] for n in nodes}
    if workers < 1:
        raise RoseError("--workers must be 1 or more")
    for node in nodes:
        res: Resources = needs[node.key][0]
        if res.gpus > gpus:
            raise RoseError(f"a {node.kind} task asks for {res.describe()}: more than the {gpus:g} GPUs given "
                            "(--gpus, or the study's resources)")  # fmt: skip
    wall, critical = _simulate(nodes, needs, workers, gpus)
    return Estimate(dict(units), seconds, source, workers, gpus, wall, critical)


def _simulate(nodes: list[graphs.Node], needs: dict, workers: int, gpus: float) -> tuple[float, float]:
    """(wall time, longest chain): list scheduling of the graph on ``workers`` CPU slots and ``gpus`` GPUs; ready
    tasks start in plan order, GPU tasks and CPU tasks each in their own queue."""
    longest: dict[str, float] = {}
    dependents: dict[str, list[str]] = {n.key: [] for n in nodes}
    left = {n.key: len(n.needs) for n in nodes}
    order = {n.key: i for i, n in enumerate(nodes)}
    for node in nodes:  # needs come first in the list
        longest[node.key] = max((longest[k] for k in node.needs), default=0.0) + needs[node.key][1]
        for k in node.needs:
            dependents[k].append(node.key)
    ready: dict[bool, list[tuple[int, str]]] = {True: [], False: []}  # uses a GPU -> heap of (order, key)

    def release(key: str) -> None:
        heapq.heappush(ready[needs[key][0].gpus > 0], (order[key], key))

    for node in nodes:
        if not left[node.key]:
            release(node.key)
    running: list[tuple[float, int, str]] = []
    free_cpu, free_gpu, now = float(workers), float(gpus), 0.0
    while True:
        for queue in (ready[True], ready[False]):
            while queue:
                res, seconds = needs[queue[0][1]]
                cpus = min(res.cpus, float(workers))
                if cpus > free_cpu + 1e-9 or res.gpus > free_gpu + 1e-9:
                    break
                _, key = heapq.heappop(queue)
                free_cpu, free_gpu = free_cpu - cpus, free_gpu - res.gpus
                heapq.heappush(running, (now + seconds, order[key], key))
        if not running:
            break
        now, _, key = heapq.heappop(running)
        res = needs[key][0]
        free_cpu, free_gpu = free_cpu + min(res.cpus, float(workers)), free_gpu + res.gpus
        for other in dependents[key]:
            left[other] -= 1
            if not left[other]:
                release(other)
    return now, max(longest.values(), default=0.0)
