"""rose generate: synthetic labelled data from an LLM under a strategy (steps over one state), tracked in MLflow.

Heavy modules load lazily: ``from rose.generate import generate, GenerateConfig``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["GenerateConfig", "GenerateResult", "generate"]


def __getattr__(name: str) -> Any:
    if name == "GenerateConfig":
        from rose.generate.config import GenerateConfig

        return GenerateConfig
    if name in ("generate", "GenerateResult"):
        from rose.generate import run

        return getattr(run, name)
    raise AttributeError(name)
