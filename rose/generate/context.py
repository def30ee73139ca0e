"""What every step can use: the task, the backend behind the completion cache, limits, counters and progress.

:meth:`Context.ask` is the only way a step talks to a model: it answers from the cache what it can, sends
the rest to the backend in batches, stores each answer as soon as it arrives, and counts requests, tokens
and seconds.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rose.errors import RoseError
from rose.generate.backends.base import Backend, Completion, Request, SamplingParams
from rose.generate.cache import CompletionCache
from rose.generate.config import GenerateConfig
from rose.languages import Language
from rose.tasks import Task

log = logging.getLogger(__name__)

# The older totals some drop reasons also add to (``stats``); judges count revision and language drops themselves.
_PARSE = ("preamble", "commentary", "cut_off", "markup", "code", "empty_item", "not_text", "garbled")
_TOTALS = {
    **dict.fromkeys(_PARSE, "parse_dropped"), "length": "length_dropped", "duplicate": "duplicates_dropped",
    "cross_label": "cross_label_dropped",
}  # fmt: skip


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
    pivot: Language | None = None  # the language of summaries and pivot demonstrations (English by default)
    min_chars: int | None = None
    max_chars: int | None = None
    stats: Counter = field(default_factory=Counter)
    progress: Any = None  # a tqdm bar, or None
    memo: dict = field(default_factory=dict)  # prompts already built and fitted
    descriptions: dict[str, str] = field(default_factory=dict)  # --descriptions, else the task file's (judges)
    dropped: Counter = field(default_factory=Counter)  # (reason, label) -> lines that did not become examples

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
            answered = 0
            try:
                for j, answer in backend.generate_each([requests[i] for i in chunk]):
                    if not 0 <= j < len(chunk):
                        raise RoseError(f"backend {backend.name} answered request {j} of {len(chunk)}")
                    self.cache.put_many({keys[chunk[j]]: answer})  # each answer is on disk as soon as it arrives
                    found[keys[chunk[j]]] = answer
                    self.stats["tokens_generated"] += answer.n_tokens
                    answered += 1
            finally:
                self.stats["generation_seconds"] += time.perf_counter() - t0
                self._tick(answered)
            if answered != len(chunk):
                raise RoseError(f"backend {backend.name} returned {answered} answers to {len(chunk)} requests")
        return [found[k] for k in keys]

    def description(self, state_descriptions: dict[str, str], label: str) -> str | None:
        """A label's meaning: the summary step's, else the ``--descriptions`` file's, else the task file's."""
        return state_descriptions.get(label) or self.descriptions.get(label)

    def drop(self, reason: str, label: str, n: int = 1) -> None:
        """Count ``n`` lines of ``label`` that did not become examples, and why."""
        if n:
            self.dropped[reason, label] += n
            if reason in _TOTALS:
                self.stats[_TOTALS[reason]] += n

    def _tick(self, n: int) -> None:
        if self.progress is not None and n:
            self.progress.update(n)

    def show(self, **postfix: Any) -> None:
        if self.progress is not None:
            self.progress.set_postfix(postfix, refresh=False)
