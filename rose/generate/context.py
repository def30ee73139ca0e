"""What every step can use: the task, the backend behind the completion cache, limits, counters and progress.

:meth:`Context.ask` is the only way a step talks to a model: it answers from the cache what it can, sends
the rest to the backend in batches, stores each batch as soon as it returns, and counts requests, tokens
and seconds.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rose.catalog import Language, Task
from rose.errors import RoseError
from rose.generate.backends.base import Backend, Completion, Request, SamplingParams
from rose.generate.cache import CompletionCache
from rose.generate.config import GenerateConfig

log = logging.getLogger(__name__)


def request_seed(*parts: Any) -> int:
    """A stable 31-bit seed from parts such as (seed, label, request index)."""
    blob = "\x1f".join(map(str, parts)).encode("utf-8")
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "big") & 0x7FFFFFFF


@dataclass
class Context:
    config: GenerateConfig
    task: Task
    language: Language
    backend: Backend
    cache: CompletionCache
    generator: str  # the generator as given
    strategy: str
    candidate: str
    chat: bool = True
    summary_backend: Backend | None = None
    min_chars: int | None = None
    max_chars: int | None = None
    stats: Counter = field(default_factory=Counter)
    progress: Any = None  # a tqdm bar, or None
    memo: dict = field(default_factory=dict)  # prompts already built and fitted

    @property
    def params(self) -> SamplingParams:
        c = self.config
        return SamplingParams(c.temperature, c.top_p, c.repetition_penalty, c.max_new_tokens)

    def ask(self, requests: list[Request], backend: Backend | None = None) -> list[Completion]:
        """Answers to ``requests`` in order: cached ones from disk, the others from the backend."""
        backend = backend or self.backend
        keys = [r.key(backend.name, backend.model) for r in requests]
        found = self.cache.get_many(list(dict.fromkeys(keys)))
        missing, queued = [], set()  # one request per key not on disk
        for i, k in enumerate(keys):
            if k not in found and k not in queued:
                queued.add(k)
                missing.append(i)
        self.stats["requests"] += len(requests)
        self.stats["requests_cached"] += len(requests) - len(missing)
        self._tick(len(requests) - len(missing))
        step = max(1, self.config.batch_size)
        for start in range(0, len(missing), step):
            chunk = missing[start : start + step]
            t0 = time.perf_counter()
            answers = backend.generate([requests[i] for i in chunk])
            self.stats["generation_seconds"] += time.perf_counter() - t0
            if len(answers) != len(chunk):
                raise RoseError(f"backend {backend.name} returned {len(answers)} answers to {len(chunk)} requests")
            fresh = {keys[i]: a for i, a in zip(chunk, answers, strict=True)}
            self.cache.put_many(fresh)
            found.update(fresh)
            self.stats["tokens_generated"] += sum(a.n_tokens for a in answers)
            self._tick(len(chunk))
        return [found[k] for k in keys]

    def _tick(self, n: int) -> None:
        if self.progress is not None and n:
            self.progress.update(n)

    def show(self, **postfix: Any) -> None:
        if self.progress is not None:
            self.progress.set_postfix(postfix, refresh=False)
