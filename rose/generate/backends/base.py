"""The backend protocol: ``load()`` once, then a batched ``generate(requests) -> completions``.

A request carries chat messages (instruction-tuned models) or a raw prompt (base models), sampling
parameters, a seed and a sample index; its key hashes everything that determines the answer, so the
on-disk cache can answer it again after a crash.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

Message = dict[str, str]


STOP_CRITERIA = ("stop_lines", "line_tokens", "line_chars")


@dataclass(frozen=True)
class SamplingParams:
    """Sampling settings; defaults are the study's (Anikina et al., EMNLP 2025)."""

    temperature: float = 0.4
    top_p: float = 0.9
    repetition_penalty: float = 1.2
    max_new_tokens: int = 512
    # stop criteria (0: off; backends without them ignore them): end the answer once it holds ``stop_lines``
    # non-empty lines, or at a line's end when fewer than ``line_tokens`` tokens are left (no room for another line),
    # or as soon as a line runs past ``line_chars`` characters (it cannot become an example; the answer then counts
    # as cut off, so its last line is dropped). A line that opens a list (``[``, ``{``) or that speaks about the
    # answer ("Here are eight sentences about ...": rose.generate.parse.about_answer) is let run.
    stop_lines: int = 0
    line_tokens: int = 0
    line_chars: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The parameters (the stop criteria only when set, so the keys of earlier answers stay the same)."""
        return {k: v for k, v in asdict(self).items() if v or k not in STOP_CRITERIA}


@dataclass
class Request:
    """One generation request. ``meta`` (label, kind) is for logging and fakes, not part of the key."""

    messages: list[Message] | None = None
    prompt: str | None = None
    params: SamplingParams = field(default_factory=SamplingParams)
    seed: int = 0
    sample_index: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("a request has either chat messages or a raw prompt")

    @property
    def rendered(self) -> Any:
        return self.messages if self.messages is not None else self.prompt

    def prompt_hash(self) -> str:
        """A hash of the prompt alone (what the model was shown)."""
        return _sha(json.dumps(self.rendered, ensure_ascii=False, sort_keys=True))[:16]

    def key(self, backend: str, model: str) -> str:
        """The cache key: backend, model, rendered prompt, sampling parameters, seed and sample index."""
        blob = {
            "backend": backend, "model": model, "rendered": self.rendered, "params": self.params.to_dict(),
            "seed": self.seed, "sample_index": self.sample_index,
        }  # fmt: skip
        return _sha(json.dumps(blob, ensure_ascii=False, sort_keys=True))


@dataclass
class Completion:
    text: str
    n_tokens: int = 0
    finish_reason: str = "stop"  # "length" when the token limit cut the answer
    cached: bool = False

    @property
    def cut_off(self) -> bool:
        return self.finish_reason == "length"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Backend(ABC):
    """A text generator. Subclasses import heavy libraries in :meth:`load`, never at module level."""

    name: str = "base"
    stops_at_lines: bool = False  # implements SamplingParams' stop criteria (stop_lines, line_tokens, line_chars)

    def __init__(self, model: str, context_length: int = 4096):
        self.model = model
        self.context_length = context_length

    def load(self) -> None:  # noqa: B027 - optional hook
        """Load weights or open connections; called once before the first :meth:`generate`."""

    @abstractmethod
    def generate(self, requests: list[Request]) -> list[Completion]:
        """One completion per request, in order."""

    def generate_each(self, requests: list[Request]) -> Iterator[tuple[int, Completion]]:
        """``(index, completion)`` pairs as answers arrive, so the caller can store each one at once.

        A backend whose requests succeed or fail one by one (a server) yields every answer it got before it
        raises for the first request that failed; a batched backend yields its batch when it is done.
        """
        yield from enumerate(self.generate(requests))

    @property
    def is_chat(self) -> bool:
        """Whether prompts should be chat messages (True) or a raw completion prompt (False)."""
        return True

    def count_tokens(self, rendered: list[Message] | str) -> int:
        """Tokens a prompt takes (an estimate of 1 token per 3 characters unless the backend knows better)."""
        text = rendered if isinstance(rendered, str) else "".join(m["content"] for m in rendered)
        return len(text) // 3 + 8 * (0 if isinstance(rendered, str) else len(rendered))

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free memory, processes and connections."""
