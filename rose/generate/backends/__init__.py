"""Generation backends behind one protocol (:class:`Backend`), and a registry to pick or add one.

``get_backend("hf", config)`` builds a backend for a :class:`~rose.generate.config.GenerateConfig`; a user adds
their own with ``register("mine", lambda config, model: MyBackend(model))``. Heavy libraries (torch, vllm,
llama_cpp, httpx) are imported by each backend, not here. ``auto`` is not a backend but a choice made per model
by :func:`resolve_backend`: ``llamacpp`` for a GGUF model when llama-cpp-python is installed, else ``hf``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib.util import find_spec
from typing import Any

from rose.errors import RoseError
from rose.generate.backends.base import Backend, Completion, Message, Request, SamplingParams
from rose.generate.backends.fake import FakeBackend

__all__ = [
    "Backend", "Completion", "FakeBackend", "Message", "Request", "SamplingParams", "get_backend", "register",
    "resolve_backend",
]  # fmt: skip

Factory = Callable[[Any, str], Backend]
_REGISTRY: dict[str, Factory] = {}


def register(name: str, factory: Factory) -> None:
    """Make ``--backend name`` build ``factory(config, model)``."""
    _REGISTRY[name] = factory


def _hf(config, model: str) -> Backend:
    from rose.generate.backends.hf import HFBackend

    return HFBackend(model, batch_size=config.batch_size, device=config.device, context_length=config.context_length)


def _vllm(config, model: str) -> Backend:
    from rose.generate.backends.vllm import VLLMBackend

    return VLLMBackend(model, context_length=config.context_length,
                       tensor_parallel_size=getattr(config, "tensor_parallel_size", 1))  # fmt: skip


def _llamacpp(config, model: str) -> Backend:
    from rose.generate.backends.llamacpp import LlamaCppBackend

    return LlamaCppBackend(model, parallel=config.batch_size, context_length=config.context_length,
                           weights=getattr(config, "gguf_weights", "auto"))  # fmt: skip


def _openai(config, model: str) -> Backend:
    from rose.generate.backends.openai import OpenAIBackend

    return OpenAIBackend(
        model,
        base_url=config.base_url,
        api_key=os.environ.get(config.api_key_env) or None,
        concurrency=config.concurrency,
        timeout=config.timeout,
        context_length=config.context_length,
        chat=config.prompt_format != "completion",
    )


def _fake(config, model: str) -> Backend:
    import os
    import re

    # seconds per request, a slow model for tests: ROSE_FAKE_DELAY, or a model named like ``fake-b@2s`` (every
    # language) or ``fake-b@fr:2s`` (slow in French only). A slow model also waits while the file named by
    # ROSE_FAKE_HOLD exists: a unit that hangs for as long as a test wants, with the same digest when released
    slow = re.search(r"@(?:(?P<lang>[a-z]{2,3}):)?(?P<s>\d+(?:\.\d+)?)s$", model)
    delay = float(os.environ.get("ROSE_FAKE_DELAY", "0"))
    if slow and slow["lang"] in (None, config.language):
        delay = float(slow["s"])
    hold = os.environ.get("ROSE_FAKE_HOLD") or None
    chat = config.prompt_format != "completion"
    return FakeBackend(model, chat=chat, context_length=config.context_length, delay=delay, hold=hold)


for _name, _factory in {"hf": _hf, "llamacpp": _llamacpp, "vllm": _vllm, "openai": _openai, "fake": _fake}.items():
    register(_name, _factory)


def llamacpp_installed() -> bool:
    """Whether llama-cpp-python can be imported (checked without importing it)."""
    return find_spec("llama_cpp") is not None


def resolve_backend(name: str, model: str) -> str:
    """``auto`` -> ``llamacpp`` for a GGUF model (an offline short name, a ``.gguf`` file or a folder holding one)
    when llama-cpp-python is installed, else ``hf``; any other name is returned as it is."""
    if name != "auto":
        return name
    from rose.assets import is_gguf_model

    return "llamacpp" if llamacpp_installed() and is_gguf_model(model) else "hf"


def get_backend(name: str, config, model: str | None = None) -> Backend:
    """The backend ``name`` for ``config`` (and ``model``, default: the config's generator)."""
    name = resolve_backend(name, model or config.generator)
    if name not in _REGISTRY:
        raise RoseError(f"unknown backend {name!r}: use one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name](config, model or config.generator)
