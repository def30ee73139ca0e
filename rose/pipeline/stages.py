"""The bridge between a study and the stage libraries: settings per unit, checks, and running one unit.

A unit runs through the same library call as its command (``rose.generate.run.generate``,
``rose.train.run.train``, ``rose.score.run.score``); the stages themselves return an identical finished run
instead of running again, and the pipeline tags each run with its unit digest (``rose.unit``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from rose.errors import RoseError
from rose.generate.backends import resolve_backend
from rose.pipeline.study import Candidate, Study

log = logging.getLogger(__name__)

# Settings the study itself decides; a stage section may not set them.
OWNED_BY_STUDY = {
    "generate": ("task", "language", "generator", "strategy", "experiment"),
    "train": ("task", "language", "data", "eval", "experiment"),
    "score": ("task", "language", "experiment", "candidates"),
}
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def config_classes() -> dict[str, type]:
    from rose.generate.config import GenerateConfig
    from rose.score.config import ScoreConfig
    from rose.train.config import TrainConfig

    return {"generate": GenerateConfig, "train": TrainConfig, "score": ScoreConfig}


def probe_values(stage: str) -> dict[str, Any]:
    """Placeholder values for the settings the study fills in, so a stage section can be checked alone."""
    return {
        "generate": {"task": "topic", "language": "en", "generator": "x", "strategy": "zero_shot"},
        "train": {"task": "topic", "language": "en", "data": "human:"},
        "score": {"task": "topic", "language": "en"},
    }[stage]


def check_strategy(name: str) -> None:
    from rose.generate.strategies import get_strategy

    get_strategy(name).build(False)


def check_model(name: str) -> None:
    """A model is an offline short name, an existing path, or a hub id (``org/name``)."""
    from rose.assets import ASSETS

    if name in ASSETS or Path(name).expanduser().exists() or _HUB_ID.match(name):
        return
    if name.startswith(("/", ".", "~")):
        raise RoseError(f"model path {name!r} does not exist: fix the path")
    raise RoseError(
        f"unknown model {name!r}: use an offline name ({', '.join(sorted(ASSETS))}), a hub id (org/name) or a path"
    )


def generate_settings(study: Study, task: str, language: str, cand: Candidate) -> dict[str, Any]:
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
    if cand.backend:
        settings["backend"] = cand.backend
    if settings.get("backend") == "auto":  # resolved here, so the unit's digest names the backend that runs it
        settings["backend"] = resolve_backend("auto", cand.generator)
    return settings


def train_settings(study: Study, task: str, language: str, cand: Candidate) -> dict[str, Any]:
    from rose.train.config import TrainConfig

    defaults = TrainConfig(task=task, language=language, data="")
    settings = {**study.train, "task": task, "language": language, "experiment": study.experiment}
    settings["seeds"] = [int(s) for s in settings.get("seeds", defaults.seeds)]
    return settings


def score_settings(study: Study, task: str, language: str) -> dict[str, Any]:
    return {
        **study.score,
        "task": task,
        "language": language,
        "experiment": study.experiment,
        "candidates": [c.name for c in study.candidates],
    }


def run_unit(study_path: str, unit_digest: str) -> str:
    """Run one unit of the study at ``study_path`` (in any process) and return its run id."""
    from rose import tracking
    from rose.pipeline import plan
    from rose.pipeline.study import load_study

    study = load_study(study_path)
    tracking.setup(study.experiment)
    units = plan.build(study)
    plan.mark_done(units, study.experiment)
    unit = next((u for u in units if u.digest == unit_digest), None)
    if unit is None:
        raise RoseError(f"unit {unit_digest} is not part of {study_path} any more: run the pipeline again")
    if unit.run_id:
        return unit.run_id
    by_digest = {u.digest: u for u in units}
    missing = [by_digest[d].label for d in unit.needs if not by_digest[d].run_id]
    if missing:
        raise RoseError(f"cannot run {unit.label}: still missing {'; '.join(missing)}")
    log.info("running %s", unit.label)
    run_id = {"generate": _generate, "train": _train, "score": _score}[unit.stage](study, unit, by_digest)
    import mlflow

    mlflow.MlflowClient().set_tag(run_id, plan.UNIT_TAG, unit.digest)
    return run_id


def _generate(study: Study, unit, by_digest) -> str:
    from rose.config import from_mapping
    from rose.generate.config import GenerateConfig
    from rose.generate.run import generate

    config = from_mapping(GenerateConfig, unit.settings, where=f"{study.path}: generate")
    return generate(config).run_id


def _train(study: Study, unit, by_digest) -> str:
    from rose.config import from_mapping
    from rose.train.config import TrainConfig
    from rose.train.run import train

    data, *others = (by_digest[d].run_id for d in unit.needs)
    evals = list(others)
    if study.human_test:
        evals.insert(0, f"human:{study.source}")
    config = from_mapping(TrainConfig, {**unit.settings, "data": data, "eval": evals},
                          where=f"{study.path}: train")  # fmt: skip
    return train(config).parent_run_id


def _score(study: Study, unit, by_digest) -> str:
    from rose.config import from_mapping
    from rose.score.config import ScoreConfig
    from rose.score.run import score

    config = from_mapping(ScoreConfig, unit.settings, where=f"{study.path}: score")
    return score(config).run_id
