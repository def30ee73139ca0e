"""A study: tasks x languages x candidates (generator, strategy), read from a short YAML file.

```yaml
experiment: rose-demo
tasks: [topic]
languages: [en]
source: ../shared/data          # human data: demonstrations, English examples, the human test set
candidates:                     # or `generators:` x `strategies:` for the full grid
  - {generator: smollm2-135m-instruct, strategy: target_demos}
generate: {backend: hf, per_label: 8}       # rose generate settings shared by every candidate
train: {classifier: multilingual-e5-small, seeds: [1, 2, 3]}
score: {}
human_test: true                # also evaluate every classifier on the human test set
```
Every key is checked before anything runs; a mistake is reported with its line and the fix.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rose.errors import RoseError

TOP_KEYS = {
    "experiment", "tasks", "languages", "source", "candidates", "generators", "strategies", "generate", "train",
    "score", "human_test", "description",
}  # fmt: skip


@dataclass(frozen=True)
class Candidate:
    generator: str
    strategy: str
    backend: str | None = None
    options: tuple[tuple[str, Any], ...] = ()  # per-candidate generate settings

    @property
    def name(self) -> str:
        from rose.naming import candidate_name

        return candidate_name(self.generator, self.strategy)


@dataclass
class Study:
    path: str
    experiment: str = "rose"
    tasks: list[str] = field(default_factory=lambda: ["topic"])
    languages: list[str] = field(default_factory=lambda: ["en"])
    source: str = "../shared/data"
    candidates: list[Candidate] = field(default_factory=list)
    generate: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    score: dict[str, Any] = field(default_factory=dict)
    human_test: bool = True
    description: str = ""

    def cases(self) -> list[tuple[str, str]]:
        return list(itertools.product(self.tasks, self.languages))


class _Where:
    def __init__(self, path: str, lines: dict[tuple, int]):
        self.path, self.lines = path, lines

    def __call__(self, *keys) -> str:
        for n in range(len(keys), -1, -1):
            if keys[:n] in self.lines:
                return f"{self.path}:{self.lines[keys[:n]]}"
        return self.path


def load_study(path: str | Path) -> Study:
    """Read and check a study file; every problem is a RoseError naming the file, the line and the fix."""
    from rose.config import read_yaml

    raw, lines = read_yaml(path, "study config")
    raw = raw or {}
    where = _Where(str(path), lines)
    if not isinstance(raw, dict):
        raise RoseError(f"{path}: a study config is a mapping of settings (experiment, tasks, candidates, ...)")
    for key in raw:
        if key not in TOP_KEYS:
            raise RoseError(f"{where(key)}: unknown key {key!r}: known keys are {', '.join(sorted(TOP_KEYS))}")
    study = Study(path=str(path))
    study.experiment = str(raw.get("experiment", "rose"))
    study.tasks = _as_list(raw.get("tasks", ["topic"]))
    study.languages = _as_list(raw.get("languages", ["en"]))
    study.source = str(raw.get("source", "../shared/data"))
    study.human_test = bool(raw.get("human_test", True))
    study.description = str(raw.get("description", ""))
    for stage in ("generate", "train", "score"):
        value = raw.get(stage) or {}
        if not isinstance(value, dict):
            raise RoseError(f"{where(stage)}: {stage!r} must be a mapping of `rose {stage}` settings")
        setattr(study, stage, value)
    study.candidates = _candidates(raw, where)
    validate(study, where)
    return study


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value or []]


def _candidates(raw: dict, where: _Where) -> list[Candidate]:
    out: list[Candidate] = []
    if "candidates" in raw and ("generators" in raw or "strategies" in raw):
        raise RoseError(f"{where('generators')}: give either `candidates:` or `generators:` x `strategies:`, not both")
    if "generators" in raw or "strategies" in raw:
        gens, strats = _as_list(raw.get("generators")), _as_list(raw.get("strategies"))
        out = [Candidate(g, s) for g, s in itertools.product(gens, strats)]
    for i, item in enumerate(raw.get("candidates") or []):
        if not isinstance(item, dict) or "generator" not in item or "strategy" not in item:
            raise RoseError(f"{where('candidates', i)}: a candidate needs `generator:` and `strategy:`")
        extra = {k: v for k, v in item.items() if k not in ("generator", "strategy", "backend")}
        out.append(
            Candidate(str(item["generator"]), str(item["strategy"]), item.get("backend"), tuple(sorted(extra.items())))
        )
    if not out:
        key = "candidates" if "candidates" in raw else "generators"
        raise RoseError(f"{where(key)}: the study has no candidates: list at least one generator and strategy")
    names = [c.name for c in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise RoseError(f"{where('candidates')}: candidate listed twice: {', '.join(sorted(dup))}")
    return out


def validate(study: Study, where: _Where) -> None:
    """Check names against the catalog, the strategies, the models and the stage settings."""
    from rose import config as cfg
    from rose.catalog import get_language, get_task

    for i, task in enumerate(study.tasks):
        _reraise(lambda t=task: get_task(t), where("tasks", i))
    for i, lang in enumerate(study.languages):
        _reraise(lambda x=lang: get_language(x), where("languages", i))
    if not study.tasks or not study.languages:
        raise RoseError(f"{where('tasks')}: the study needs at least one task and one language")
    from rose.pipeline import stages

    for stage, cls in stages.config_classes().items():
        settings = getattr(study, stage)
        known = {f.name for f in dataclasses.fields(cls)}
        for key in settings:
            if key.replace("-", "_") not in known:
                raise RoseError(f"{where(stage, key)}: {stage}: unknown setting {key!r}: see `rose {stage} --help`")
            if key.replace("-", "_") in stages.OWNED_BY_STUDY.get(stage, ()):
                raise RoseError(f"{where(stage, key)}: {key!r} is set by the study itself; remove it here")
        probe = {**stages.probe_values(stage), **settings}
        _reraise(lambda c=cls, p=probe, s=stage: cfg.from_mapping(c, p, where=s), where(stage))
    for i, cand in enumerate(study.candidates):
        at = where("candidates", i) if ("candidates", i) in where.lines else where("generators")
        _reraise(lambda c=cand: stages.check_strategy(c.strategy), at)
        backend = cand.backend or study.generate.get("backend", "hf")
        if backend in ("hf", "llamacpp", "vllm", "auto"):  # a server or a fake knows its own model names
            _reraise(lambda c=cand: stages.check_model(c.generator), at)
    _reraise(lambda: stages.check_model(str(study.train.get("classifier", "multilingual-e5-small"))), where("train"))


def _reraise(call, at: str) -> None:
    try:
        call()
    except RoseError as exc:
        msg = str(exc)
        raise RoseError(msg if msg.startswith(at.split(":")[0] + ":") else f"{at}: {msg}") from None
