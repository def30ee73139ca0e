"""A study: tasks x languages x candidates (generator, strategy), read from a short YAML file.

```yaml
experiment: rose-demo
tasks: [topic]                  # built-in names, task files (.yaml, relative to this file), or tasks written inline
languages: [en]
source: ../shared/data          # human data: demonstrations, English examples, the human test set
candidates:                     # or `generators:` x `strategies:` for the full grid
  - {generator: smollm2-135m-instruct, strategy: target_demos}
  - {data: path/to/file.csv, name: llama3-70b, label_column: intent}   # a dataset made elsewhere (imported)
generate: {backend: hf, per_label: 8}       # rose generate settings shared by every candidate
train: {classifier: multilingual-e5-small, seeds: [1, 2, 3]}
score: {}
human_test: true                # evaluate every classifier on the human test set (or: a data folder of its own)
equal_per_label: true           # train every candidate on the same number of examples per label (the smallest)
min_per_label: 6                # ... but never cut below this (default: half the training per_label)
pre_race: {keep: 3}             # fine-tune only the best 3 by rose_probe (off by default; rose.pipeline.prerace)
resources: {train: {gpus: 0.5, cpus: 2}}   # what each kind of unit asks of a worker (rose.pipeline.resources)
```
Every key is checked before anything runs; a mistake is reported with its line and the fix. With a human test set,
the study also trains the human-data baseline (same settings, same number of human examples per label).
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rose import config as cfg
from rose.assets import ASSETS
from rose.errors import RoseError
from rose.generate.backends import resolve_backend
from rose.generate.config import GenerateConfig
from rose.generate.steps import read_descriptions
from rose.generate.strategies import get_strategy
from rose.human_data import parse_label_map
from rose.importing import ImportConfig
from rose.languages import get_language
from rose.locations import SHARED_DATA, is_hub_id, project_dir
from rose.naming import candidate_name, slug
from rose.pipeline import resources as unit_resources
from rose.pipeline.prerace import PreRace
from rose.pipeline.prerace import parse as parse_pre_race
from rose.score.config import ScoreConfig
from rose.tasks import BUILTIN, from_dict, get_task
from rose.train.config import TrainConfig

TOP_KEYS = {
    "experiment", "tasks", "languages", "source", "candidates", "generators", "strategies", "generate", "train",
    "score", "human_test", "equal_per_label", "min_per_label", "description", "pre_race", "resources",
}  # fmt: skip

# Settings the study itself decides; a stage section may not set them.
OWNED_BY_STUDY = {
    "generate": ("task", "language", "generator", "strategy", "experiment"),
    "train": ("task", "language", "data", "eval", "experiment"),
    "score": ("task", "language", "experiment", "candidates", "train_runs", "human_test"),
}


@dataclass(frozen=True)
class Candidate:
    generator: str
    strategy: str
    backend: str | None = None
    options: tuple[tuple[str, Any], ...] = ()  # per-candidate generate settings (import settings if imported)
    data: str = ""  # a dataset made elsewhere: the candidate is imported (`rose data import`), not generated
    given_name: str = ""  # the name an imported candidate is listed under

    @property
    def name(self) -> str:
        return slug(self.given_name) if self.given_name else candidate_name(self.generator, self.strategy)

    @property
    def imported(self) -> bool:
        return bool(self.data)


@dataclass
class Study:
    path: str
    experiment: str = "rose"
    tasks: list[str] = field(default_factory=lambda: ["topic"])
    languages: list[str] = field(default_factory=lambda: ["en"])
    source: str = SHARED_DATA
    candidates: list[Candidate] = field(default_factory=list)
    generate: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    score: dict[str, Any] = field(default_factory=dict)
    human_test: bool = True
    human_test_source: str = ""  # the folder of the human test set (default: ``source``)
    equal_per_label: bool = True
    min_per_label: int = 0  # the cut's floor (0: half the training per_label, rounded up)
    pre_race: PreRace | None = None  # fine-tune only the best candidates by rose_probe (None: every candidate)
    description: str = ""
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)  # per kind of unit: gpus, cpus, ...

    def cases(self) -> list[tuple[str, str]]:
        return list(itertools.product(self.tasks, self.languages))

    @property
    def human_train_ref(self) -> str:
        return f"human:{self.source}"

    @property
    def human_test_ref(self) -> str:
        return f"human:{self.human_test_source or self.source}"


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
    raw, lines = cfg.read_yaml(path, "study config")
    raw = raw or {}
    where = _Where(str(path), lines)
    if not isinstance(raw, dict):
        raise RoseError(f"{path}: a study config is a mapping of settings (experiment, tasks, candidates, ...)")
    for key in raw:
        if key not in TOP_KEYS:
            raise RoseError(f"{where(key)}: unknown key {key!r}: known keys are {', '.join(sorted(TOP_KEYS))}")
    study = Study(path=str(path))
    study.experiment = str(raw.get("experiment", "rose"))
    study.tasks = _tasks(raw.get("tasks", ["topic"]), str(path), where)
    study.languages = _as_list(raw.get("languages", ["en"]))
    study.source = str(raw.get("source", SHARED_DATA))
    human_test = raw.get("human_test", True)
    if isinstance(human_test, str) and human_test.strip().lower() not in ("true", "false", "yes", "no"):
        study.human_test, study.human_test_source = True, human_test.strip()
    else:
        study.human_test = _bool(human_test, where("human_test"), "human_test")
    study.equal_per_label = _bool(raw.get("equal_per_label", True), where("equal_per_label"), "equal_per_label")
    study.min_per_label = _count(raw.get("min_per_label", 0), where("min_per_label"), "min_per_label")
    study.pre_race = parse_pre_race(raw.get("pre_race"), where("pre_race"))
    study.description = str(raw.get("description", ""))
    study.resources = unit_resources.parse(raw.get("resources"), where)
    for stage in ("generate", "train", "score"):
        value = raw.get(stage) or {}
        if not isinstance(value, dict):
            raise RoseError(f"{where(stage)}: {stage!r} must be a mapping of `rose {stage}` settings")
        setattr(study, stage, value)
    study.candidates = _candidates(raw, where)
    validate(study, where)
    return study


def _count(value: Any, at: str, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RoseError(f"{at}: {key} must be a whole number of examples per label (0 or more), not {value!r}")
    return value


def _bool(value: Any, at: str, key: str) -> bool:
    try:
        return cfg.parse_bool(value)
    except RoseError:
        raise RoseError(f"{at}: {key} is true or false, not {value!r}") from None


def _tasks(value: Any, path: str, where: _Where) -> list[str]:
    """The study's tasks as names or task-file paths every stage can load: a built-in name, a task file (looked up
    from here, beside the study file, then in the project directory), or a task written inline (a mapping, saved
    under ``.rose/tasks/`` by its content)."""
    items = value if isinstance(value, list) else _as_list(value)
    out = []
    for i, item in enumerate(items):
        if isinstance(item, dict):
            task = from_dict(item, where("tasks", i))
            folder = project_dir() / ".rose" / "tasks"
            folder.mkdir(parents=True, exist_ok=True)
            saved = folder / f"{task.name}-{task.digest[:8]}.yaml"
            if not saved.exists():
                saved.write_text(task.to_yaml(), encoding="utf-8")
            out.append(str(saved))
        elif str(item) in BUILTIN:
            out.append(str(item))
        else:
            out.append(_data_path_from(path, str(item)))
    return out


def _data_path_from(study_path: str, data: str) -> str:
    """A relative path is looked up from here, then beside the study file, then in the project directory."""
    path = Path(data).expanduser()
    if path.is_absolute() or path.exists():
        return str(path)
    for base in (Path(study_path).parent, project_dir()):
        if (base / path).exists():
            return str(base / path)
    return data


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
        if isinstance(item, dict) and "data" in item:
            out.append(_imported(item, where("candidates", i)))
            continue
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


IMPORT_KEYS = ("data", "name", "generator", "strategy", "text_column", "label_column", "label_map", "split")


def _imported(item: dict, at: str) -> Candidate:
    """A candidate listed as ``{data: file, name: ..., text_column: ..., label_column: ..., label_map: ...}``."""
    unknown = sorted(set(item) - set(IMPORT_KEYS))
    if unknown:
        raise RoseError(f"{at}: an imported candidate takes {', '.join(IMPORT_KEYS)}; unknown: {', '.join(unknown)}")
    if not item.get("name"):
        raise RoseError(f"{at}: an imported candidate needs `name:` (the candidate's name, e.g. llama3-70b)")
    name = str(item["name"])
    options = {k: str(v) for k, v in item.items() if k in ("text_column", "label_column", "label_map", "split")}
    return Candidate(str(item.get("generator") or name), str(item.get("strategy") or "imported"), None,
                     tuple(sorted(options.items())), data=str(item["data"]), given_name=name)  # fmt: skip


def validate(study: Study, where: _Where) -> None:
    """Check names against the tasks, the languages, the strategies, the models and the stage settings."""
    for i, task in enumerate(study.tasks):
        _reraise(lambda t=task: get_task(t), where("tasks", i))
    for i, lang in enumerate(study.languages):
        _reraise(lambda x=lang: get_language(x), where("languages", i))
    if not study.tasks or not study.languages:
        raise RoseError(f"{where('tasks')}: the study needs at least one task and one language")
    for stage, cls in config_classes().items():
        settings = getattr(study, stage)
        known = {f.name for f in dataclasses.fields(cls)}
        for key in settings:
            if key.replace("-", "_") not in known:
                raise RoseError(f"{where(stage, key)}: {stage}: unknown setting {key!r}: see `rose {stage} --help`")
            if key.replace("-", "_") in OWNED_BY_STUDY.get(stage, ()):
                raise RoseError(f"{where(stage, key)}: {key!r} is set by the study itself; remove it here")
        probe = {**probe_values(stage), **settings}
        if stage == "generate" and isinstance(settings.get("descriptions"), dict):
            _check_descriptions(study, settings["descriptions"], where)
            probe["descriptions"] = ""
        _check(cls, probe, stage, lambda name, s=stage: where(s, name) if name in getattr(study, s) else where(s))
    for i, cand in enumerate(study.candidates):
        at = where("candidates", i) if ("candidates", i) in where.lines else where("generators")
        if cand.imported:
            _reraise(lambda c=cand: check_import(study, c), at)
            continue
        _reraise(lambda c=cand: check_strategy(c.strategy), at)
        backend = cand.backend or study.generate.get("backend", "hf")
        if backend in ("hf", "llamacpp", "vllm", "auto"):  # a server or a fake knows its own model names
            _reraise(lambda c=cand: check_model(c.generator), at)
    _reraise(lambda: check_model(str(study.train.get("classifier", "multilingual-e5-small"))), where("train"))
    _check_source(study, where)
    _check_units(study, where)


def _check_source(study: Study, where: _Where) -> None:
    """A local ``source`` must exist (from here or from the project directory), as every unit will read it."""
    if study.source in ("auto", "hub", "hf"):
        return
    path = Path(study.source).expanduser()
    if not path.exists() and (path.is_absolute() or not (project_dir() / path).exists()):
        raise RoseError(f"{where('source')}: no data at {study.source}: fix `source:` (a folder, a file, hub or auto)")


def config_classes() -> dict[str, type]:
    return {"generate": GenerateConfig, "train": TrainConfig, "score": ScoreConfig}


def probe_values(stage: str) -> dict[str, Any]:
    """Placeholder values for the settings the study fills in, so a stage section can be checked alone."""
    return {
        "generate": {"task": "topic", "language": "en", "generator": "x", "strategy": "zero_shot"},
        "train": {"task": "topic", "language": "en", "data": "human:"},
        "score": {"task": "topic", "language": "en"},
    }[stage]


def check_strategy(name: str) -> None:
    get_strategy(name).build(False)


def check_model(name: str) -> None:
    """A model is an offline short name, an existing path, or a hub id (``org/name``)."""
    if name in ASSETS or Path(name).expanduser().exists() or is_hub_id(name):
        return
    if name.startswith(("/", ".", "~")):
        raise RoseError(f"model path {name!r} does not exist: fix the path")
    raise RoseError(
        f"unknown model {name!r}: use an offline name ({', '.join(sorted(ASSETS))}), a hub id (org/name) or a path"
    )


# --- the settings of each stage (the plan builds its units from these) ---------------------------------------


def import_settings(study: Study, task: str, language: str, cand: Candidate) -> dict[str, Any]:
    """``rose data import`` settings of an imported candidate (its generate unit runs the import)."""
    settings = {
        **dict(cand.options),
        "task": task,
        "language": language,
        "data": _data_path(study, cand.data),
        "candidate": cand.name,
        "generator": cand.generator,
        "strategy": cand.strategy,
        "experiment": study.experiment,
    }
    return settings


def _data_path(study: Study, data: str) -> str:
    """A relative path is looked up from here, then beside the study file, then in the project directory."""
    return _data_path_from(study.path, data)


def check_import(study: Study, cand: Candidate) -> None:
    """An imported candidate's settings are valid and its data exists (a path, or a hub id)."""
    settings = import_settings(study, study.tasks[0], study.languages[0], cand)
    cfg.from_mapping(ImportConfig, settings, where="candidate")
    if not Path(settings["data"]).exists() and not is_hub_id(cand.data):
        raise RoseError(f"no such file: {cand.data}: an imported candidate's `data:` is a file, a folder or a hub id")
    parse_label_map(settings.get("label_map"))


def generate_settings(study: Study, task: str, language: str, cand: Candidate) -> dict[str, Any]:
    if cand.imported:
        return import_settings(study, task, language, cand)
    settings = {
        **study.generate,
        **dict(cand.options),
        "task": task,
        "language": language,
        "generator": cand.generator,
        "strategy": cand.strategy,
        "experiment": study.experiment,
    }
    settings.setdefault("source", study.source)
    if isinstance(settings.get("descriptions"), dict):  # one descriptions file per task (by the task's name)
        settings["descriptions"] = str(settings["descriptions"].get(get_task(task).name, ""))
    if cand.backend:
        settings["backend"] = cand.backend
    if settings.get("backend") == "auto":  # resolved here, so the unit's digest names the backend that runs it
        settings["backend"] = resolve_backend("auto", cand.generator)
    return settings


def train_settings(study: Study, task: str, language: str, *, per_label: int | None = None) -> dict[str, Any]:
    """The training settings of a case (one for every candidate and the human baseline; ``per_label``: the cut)."""
    defaults = TrainConfig(task=task, language=language, data="")
    settings = {**study.train, "task": task, "language": language, "experiment": study.experiment}
    settings["seeds"] = cfg.parse_list(settings.get("seeds", defaults.seeds), int)
    if per_label is not None:
        settings["per_label"] = per_label
    return settings


def score_settings(study: Study, task: str, language: str) -> dict[str, Any]:
    return {
        **study.score,
        "task": task,
        "language": language,
        "experiment": study.experiment,
        "candidates": [c.name for c in study.candidates],
    }


def _check_units(study: Study, where: _Where) -> None:
    """Build every unit's config as the real run will, so `--dry-run` refuses what the run would refuse."""
    classes = config_classes()
    for task, language in study.cases():
        for i, cand in enumerate(study.candidates):
            options = dict(cand.options)

            def line(name: str, i: int = i, options: dict = options) -> str:
                if name in options and ("candidates", i, name) in where.lines:
                    return where("candidates", i, name)
                return where("generate", name) if name in study.generate else where("candidates", i)

            settings = generate_settings(study, task, language, cand)
            stage = "import" if cand.imported else "generate"
            _check(ImportConfig if cand.imported else classes["generate"], settings,
                   f"{stage} ({cand.name}, {task}/{language})", line)  # fmt: skip
            try:
                settings = {**train_settings(study, task, language), "data": "human:"}
            except RoseError as exc:
                raise RoseError(f"{where('train', 'seeds')}: train: seeds: {exc}") from None
            _check(
                classes["train"], settings, "train", lambda n: where("train", n) if n in study.train else where("train")
            )
        _check(classes["score"], score_settings(study, task, language), "score",
               lambda n: where("score", n) if n in study.score else where("score"))  # fmt: skip


def _check(cls: type, settings: dict, what: str, line) -> None:
    """``from_mapping`` with the error pointed at the line of the setting at fault."""
    try:
        cfg.from_mapping(cls, settings, where=what)
    except cfg.SettingError as exc:
        # a check across fields names its settings as flags: point at the first one the study sets
        name = exc.name or next((k for k in settings if cfg.flag(k.replace("-", "_")) in str(exc)), "")
        raise RoseError(f"{line(name)}: {exc}") from None
    except RoseError as exc:
        raise RoseError(f"{line('')}: {exc}") from None


def _check_descriptions(study: Study, files: dict, where: _Where) -> None:
    """``generate: {descriptions: {task: file}}``: a file for every task of the study, each naming every label."""
    at = where("generate", "descriptions")
    names = {get_task(t).name: t for t in study.tasks}
    for task in files:
        if task not in names:
            raise RoseError(f"{at}: descriptions for {task!r}, which is not a task of this study ({', '.join(names)})")
    key = str(study.generate.get("descriptions_key", ""))
    for name, task in names.items():
        if name not in files:
            raise RoseError(f"{at}: no descriptions file for task {name!r}: add `{name}: <file.csv>`")
        _reraise(lambda n=name, t=task: read_descriptions(str(files[n]), list(get_task(t).labels), key), at)


def _reraise(call, at: str) -> None:
    try:
        call()
    except RoseError as exc:
        msg = str(exc)
        raise RoseError(msg if msg.startswith(at.split(":")[0] + ":") else f"{at}: {msg}") from None
