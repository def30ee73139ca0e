"""What each kind of unit asks of a worker: GPUs (fractional allowed), CPUs, memory, a time limit and retries.

Set in the study, per kind of unit::

    resources:
      generate: {gpus: 1, cpus: 2, memory_gb: 24, timeout_s: 7200, max_retries: 2}
      train:    {gpus: 0.25, cpus: 2}        # four fine-tunes share one GPU
      evaluate: {cpus: 1}
      score:    {cpus: 2, memory_gb: 8}

Defaults follow the unit: generation asks for one GPU only on a GPU backend (``hf``, ``vllm``); ``llamacpp``,
``openai``, ``fake`` and imported candidates ask for none (``llamacpp`` gets the GPUs the study gives it; imported,
``openai`` and ``fake`` never). Training asks for one GPU when the cluster has GPUs, else
none; cells and score for none. Every unit asks for one CPU and gets as many threads as CPUs it asked for; no time
limit; two retries after a worker dies (or the time limit passes).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from rose.errors import RoseError

KINDS = ("generate", "train", "evaluate", "score")
GPU_BACKENDS = ("hf", "vllm")
NO_GPU = (None, "openai", "fake")  # never a GPU (None: an imported candidate); llamacpp gets one when asked
KEYS = ("gpus", "cpus", "memory_gb", "timeout_s", "max_retries")


@dataclass(frozen=True)
class Resources:
    gpus: float = 0.0
    cpus: float = 1.0
    memory_gb: float = 0.0  # 0: Ray's default (no reservation)
    timeout_s: float = 0.0  # 0: no limit
    max_retries: int = 2

    def ray_options(self, kind: str) -> dict[str, Any]:
        """``.options(...)`` of a Ray task: its resources and retries (GPU generation: a fresh worker per unit)."""
        opts: dict[str, Any] = {"num_cpus": self.cpus, "num_gpus": self.gpus, "max_retries": self.max_retries,
                                "retry_exceptions": False}  # fmt: skip
        if self.memory_gb:
            opts["memory"] = int(self.memory_gb * 1024**3)
        if kind == "generate" and self.gpus:
            opts["max_calls"] = 1  # the model's GPU memory ends with its unit
        return opts

    @property
    def threads(self) -> int:
        return max(1, int(self.cpus))

    def describe(self) -> str:
        parts = [f"{self.gpus:g} GPU" if self.gpus else "", f"{self.cpus:g} CPU",
                 f"{self.memory_gb:g} GB" if self.memory_gb else "",
                 f"limit {self.timeout_s:g} s" if self.timeout_s else ""]  # fmt: skip
        return ", ".join(p for p in parts if p)


def parse(raw: Any, where) -> dict[str, dict[str, Any]]:
    """The study's ``resources:`` section, checked (``where(*keys)`` gives a line to point at)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise RoseError(f"{where('resources')}: resources is a mapping of {', '.join(KINDS)} to their resources")
    out: dict[str, dict[str, Any]] = {}
    for kind, values in raw.items():
        if kind not in KINDS:
            raise RoseError(f"{where('resources', kind)}: resources: unknown kind of unit {kind!r}: use "
                            f"{', '.join(KINDS)}")  # fmt: skip
        if not isinstance(values, dict):
            raise RoseError(f"{where('resources', kind)}: resources: {kind} is a mapping of {', '.join(KEYS)}")
        for key, value in values.items():
            at = where("resources", kind, key)
            if key not in KEYS:
                raise RoseError(f"{at}: resources: {kind}: unknown key {key!r}: use {', '.join(KEYS)}")
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or value < 0 or (key == "max_retries" and not isinstance(value, int)):
                kind_of = "a whole number" if key == "max_retries" else "a number"
                raise RoseError(f"{at}: resources: {kind}: {key} must be {kind_of}, 0 or more, not {value!r}")
            if key == "cpus" and value == 0:
                raise RoseError(f"{at}: resources: {kind}: cpus must be more than 0")
            if key == "gpus" and value > 1 and value != int(value):
                raise RoseError(f"{at}: resources: {kind}: gpus above 1 must be whole, not {value}")
        out[kind] = dict(values)
    return out


def for_unit(kind: str, backend: str | None, study: dict[str, dict[str, Any]], *, cluster_gpus: float = 0.0,
             gpus_per_generator: float | None = None) -> Resources:  # fmt: skip
    """The resources of a unit of ``kind`` (``backend``: a generate unit's backend, None when imported)."""
    if kind == "generate":
        gpu = backend in GPU_BACKENDS
        base = Resources(gpus=(gpus_per_generator or 1.0) if gpu else 0.0)
    elif kind == "train":
        base = Resources(gpus=1.0 if cluster_gpus else 0.0)
    else:
        base = Resources()
    given = study.get(kind, {})
    if kind == "generate" and backend in NO_GPU:
        given = {k: v for k, v in given.items() if k != "gpus"}  # a server, a file or the fake needs no GPU here
    return replace(base, **{k: (int(v) if k == "max_retries" else float(v)) for k, v in given.items()})
