"""A deterministic, scripted backend for tests and dry runs (``--backend fake``).

With no script it answers like a small instruction-tuned model: a numbered list of label-dependent
sentences for a generation request, "Yes"/"No" plus a reason for a revision request, one sentence for a
label summary. The answer depends only on the request (prompt, seed, sample index), never on call order,
so runs are reproducible and resumable. A script overrides it::

    FakeBackend(script="1. one\\n2. two")                 # every answer
    FakeBackend(script=["first answer", "second answer"])  # in turn, by call count
    FakeBackend(script={"generate": "...", "revise": "No, off topic"})  # by request kind
    FakeBackend(script=lambda request: "...")              # computed; may return a Completion
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rose.generate.backends.base import Backend, Completion, Request

_VOCAB = (
    "morning city river people report market new old small large first last north south team music plan day "
    "week year school road house water light story group local public open early late quick quiet strong bright"
).split()

Script = str | list | dict | Callable[[Request], Any] | None


class FakeBackend(Backend):
    """Scripted or seeded answers with no model. ``calls_file`` appends one JSON line per answered request."""

    name = "fake"

    def __init__(
        self,
        model: str = "fake-lm",
        script: Script = None,
        *,
        chat: bool = True,
        delay: float = 0.0,
        calls_file: str | Path | None = None,
        context_length: int = 4096,
        cut_last: bool = False,
        hold: str | Path | None = None,
    ):
        super().__init__(model, context_length)
        self.script = script
        self.chat = chat
        self.delay = delay
        self.calls_file = Path(calls_file) if calls_file else None
        self.cut_last = cut_last
        self.hold = Path(hold) if hold else None  # with a delay: each request waits while this file exists
        self.calls: list[Request] = []

    @property
    def is_chat(self) -> bool:
        return self.chat

    def count_tokens(self, rendered) -> int:
        text = rendered if isinstance(rendered, str) else " ".join(m["content"] for m in rendered)
        return len(text.split())

    def generate(self, requests: list[Request]) -> list[Completion]:
        out = []
        for request in requests:
            if self.delay:
                while self.hold is not None and self.hold.exists():
                    time.sleep(0.5)
                time.sleep(self.delay)
            answer = self._answer(request, len(self.calls))
            self.calls.append(request)
            completion = (
                answer
                if isinstance(answer, Completion)
                else Completion(
                    str(answer),
                    n_tokens=len(str(answer).split()),
                    finish_reason="length" if self.cut_last and _kind(request) == "generate" else "stop",
                )
            )
            out.append(completion)
            self._record(request)
        return out

    def _record(self, request: Request) -> None:
        if not self.calls_file:
            return
        line = json.dumps(
            {"key": request.key(self.name, self.model), "kind": _kind(request), "label": request.meta.get("label")}
        )
        with self.calls_file.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def _answer(self, request: Request, n_call: int) -> Any:
        script = self.script
        if isinstance(script, dict):
            script = script.get(_kind(request), script.get("default"))
        if callable(script):
            return script(request)
        if isinstance(script, list):
            return script[n_call % len(script)] if script else ""
        if isinstance(script, str):
            return script
        return default_answer(request)


def _kind(request: Request) -> str:
    return request.meta.get("kind", "generate")


def _rng(request: Request) -> random.Random:
    blob = json.dumps([request.rendered, request.seed, request.sample_index], ensure_ascii=False)
    return random.Random(hashlib.sha256(blob.encode("utf-8")).hexdigest())


def label_words(label: str, k: int = 4) -> list[str]:
    """Pseudo-words that mark a label, so a classifier can learn fake data."""
    digest = hashlib.sha256(label.encode("utf-8")).hexdigest()
    stem = "".join(c for c in label.lower() if c.isalpha())[:6] or "lab"
    return [f"{stem}{digest[2 * i : 2 * i + 3]}" for i in range(k)]


def default_answer(request: Request) -> str:
    """The seeded answer of the default fake model."""
    rng = _rng(request)
    kind, label = _kind(request), str(request.meta.get("label", "label"))
    if kind == "revise":
        return "Yes. It fits the category." if rng.random() < 0.8 else "No, it does not fit the category."
    if kind == "summary":
        return f"This category covers texts about {label.replace('_', ' ')}."
    marks = label_words(label)
    lines = []
    for i in range(int(request.meta.get("n", 10))):
        if lines and rng.random() < 0.1:  # models repeat themselves
            lines.append(lines[-1].split(". ", 1)[1])
        else:
            words = rng.sample(_VOCAB, rng.randint(6, 12)) + rng.sample(marks, 2)
            rng.shuffle(words)
            lines.append(" ".join(words).capitalize() + ".")
        lines[-1] = f"{i + 1}. {lines[-1]}"
    preamble = "Here are the examples:\n" if rng.random() < 0.3 else ""
    return preamble + "\n".join(lines)
