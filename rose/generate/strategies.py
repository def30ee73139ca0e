"""Strategies: named presets of steps, and user strategies from YAML.

A strategy is a list of step specs ``(name, options)``. ``revise`` and a filtering ``language_check`` after
``generate`` wrap it (they judge each new example); a ``language_check`` is always appended to measure the
target-language share. A YAML strategy file looks like::

    name: my_strategy
    steps:
      - label_descriptions: {examples: 10}
      - demonstrations: {source: target, k: 5}
      - generate: {}
      - revise: {}
      - language_check: {filter: true}

Reference: Anikina et al. (EMNLP 2025), table of strategies in section 1 of method.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rose.config import read_yaml
from rose.errors import RoseError
from rose.generate.judges import LanguageCheck, Revise
from rose.generate.steps import Demonstrations, Generate, LabelDescriptions

StepSpec = tuple[str, dict[str, Any]]

_SL = ("label_descriptions", {})
_EN = ("demonstrations", {"source": "en"})
_TARGET = ("demonstrations", {"source": "target"})
_GEN = ("generate", {})
_REV = ("revise", {})

PRESETS: dict[str, list[StepSpec]] = {
    "zero_shot": [_GEN],
    "sl": [_SL, _GEN],
    "english_demos_sl": [_SL, _EN, _GEN],
    "english_demos_revision": [_EN, _GEN, _REV],
    "target_demos": [_TARGET, _GEN],
    "target_demos_sl": [_SL, _TARGET, _GEN],
    "target_demos_revision": [_TARGET, _GEN, _REV],
    "target_demos_sl_revision": [_SL, _TARGET, _GEN, _REV],
}

STEPS: dict[str, Callable[..., Any]] = {
    "label_descriptions": lambda descriptions=None, examples=None: LabelDescriptions(descriptions, examples),
    "demonstrations": lambda source="target", k=None: Demonstrations(source, k),
    "generate": lambda: Generate(),
    "revise": lambda: Revise(),
    "language_check": lambda filter=False: LanguageCheck(filter=filter),  # noqa: A006
}


@dataclass
class Strategy:
    name: str
    specs: list[StepSpec]

    def build(self, language_filter: bool = False) -> list:
        """The runnable steps: judges wrap the generation step before them."""
        steps: list = []
        specs = list(self.specs) + ([("language_check", {"filter": True})] if language_filter else [])
        for name, options in specs:
            try:
                step = STEPS[name](**options)
            except TypeError as exc:
                raise RoseError(f"strategy {self.name!r}: step {name!r}: bad options {options}: {exc}") from None
            wraps = isinstance(step, Revise) or (isinstance(step, LanguageCheck) and step.filter)
            if (
                wraps
                and steps
                and isinstance(steps[-1], (Generate, Revise, LanguageCheck))
                and _has_generate(steps[-1])
            ):
                step.inner = steps.pop()
            elif isinstance(step, Revise):
                raise RoseError(f"strategy {self.name!r}: 'revise' must come after a 'generate' step")
            steps.append(step)
        if not any(_has_generate(s) for s in steps):
            raise RoseError(f"strategy {self.name!r} has no 'generate' step")
        if not (isinstance(steps[-1], LanguageCheck) and steps[-1].inner is None):
            steps.append(LanguageCheck())
        return steps

    @property
    def uses_revision(self) -> bool:
        return any(name == "revise" for name, _ in self.specs)

    def descriptions_source(self, config) -> str:
        """Where the label descriptions this strategy uses come from (the ``rose.descriptions`` tag).

        ``file:<name>`` (one fixed set: ``--descriptions`` or the step's own CSV), ``generator`` (each generator
        summarises the labels), ``model:<name>`` (``--summary-model`` does), ``task`` (the task file's, for a
        revision judge with no summary step) or ``none`` (the strategy states no label's meaning).
        """
        summary = next((options for name, options in self.specs if name == "label_descriptions"), None)
        if summary is not None:
            path = summary.get("descriptions") or config.descriptions
            if path:
                return f"file:{Path(path).name}"
            if config.summary_model and config.summary_model != config.generator:
                return f"model:{config.summary_model}"
            return "generator"
        if self.uses_revision:
            return f"file:{Path(config.descriptions).name}" if config.descriptions else "task"
        return "none"


def _has_generate(step) -> bool:
    while step is not None:
        if isinstance(step, Generate):
            return True
        step = getattr(step, "inner", None)
    return False


def get_strategy(name_or_path: str) -> Strategy:
    """A preset by name, or a strategy from a YAML file."""
    if name_or_path in PRESETS:
        return Strategy(name_or_path, list(PRESETS[name_or_path]))
    path = Path(name_or_path).expanduser()
    if path.suffix.lower() in (".yaml", ".yml") or path.exists():
        return load_strategy(path)
    raise RoseError(f"unknown strategy {name_or_path!r}: use one of {', '.join(PRESETS)} or a YAML strategy file")


def load_strategy(path: str | Path) -> Strategy:
    """A user strategy from YAML; an unknown step is an error naming its line."""
    data, lines = read_yaml(path, "strategy file")
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise RoseError(f"{path}: expected a mapping with a 'steps' list")
    specs = []
    for i, item in enumerate(data["steps"]):
        line = lines[("steps", i)]
        if isinstance(item, str):
            item = {item: {}}
        if not isinstance(item, dict) or len(item) != 1:
            raise RoseError(f"{path}:{line}: a step is one name with its options, e.g. 'generate: {{}}'")
        ((name, options),) = item.items()
        if name not in STEPS:
            raise RoseError(f"{path}:{line}: unknown step {name!r}: use one of {', '.join(STEPS)}")
        if not isinstance(options or {}, dict):
            raise RoseError(f"{path}:{line}: options of step {name!r} must be a mapping")
        try:
            STEPS[name](**(options or {}))
        except (TypeError, RoseError) as exc:
            raise RoseError(f"{path}:{line}: step {name!r}: bad options {options}: {exc}") from None
        specs.append((name, dict(options or {})))
    return Strategy(str(data.get("name") or path.stem), specs)
