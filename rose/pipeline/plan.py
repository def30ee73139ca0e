"""The plan of a study: units of work (generate, train, score), their digests, and what is already done.

A unit is done when a finished run tagged ``rose.unit=<digest>`` exists in the study's experiment. The
digest covers everything that determines the unit's result, including the digests of the units it reads
from, so changing a generation setting re-runs that candidate's generation, its training and the score,
and nothing else.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rose.pipeline.study import Candidate, Study

UNIT_TAG = "rose.unit"


@dataclass
class Unit:
    stage: str  # generate, train or score
    task: str
    language: str
    settings: dict[str, Any]  # the stage's config values, before run ids are filled in
    digest: str = ""
    candidate: Candidate | None = None
    seeds: list[int] = field(default_factory=list)
    needs: list[str] = field(default_factory=list)  # digests of units whose runs this one reads
    run_id: str | None = None  # the finished run, once known

    @property
    def label(self) -> str:
        who = self.candidate.name if self.candidate else "all candidates"
        seeds = f" seeds {','.join(map(str, self.seeds))}" if self.seeds else ""
        return f"{self.stage:<8} {self.task}/{self.language} {who}{seeds}"


def build(study: Study) -> list[Unit]:
    """Every unit of the study, in an order that respects dependencies (generate, train, score)."""
    from rose.pipeline import stages
    from rose.tracking import digest

    units: list[Unit] = []
    for task, lang in study.cases():
        gens: dict[str, Unit] = {}
        for cand in study.candidates:
            settings = stages.generate_settings(study, task, lang, cand)
            gens[cand.name] = Unit("generate", task, lang, settings, digest({"generate": settings}), cand)
        trains = []
        for cand in study.candidates:
            others = [gens[c.name].digest for c in study.candidates if c.name != cand.name]
            settings = stages.train_settings(study, task, lang, cand)
            unit = Unit(
                "train",
                task,
                lang,
                settings,
                candidate=cand,
                seeds=list(settings.get("seeds", [])),
                needs=[gens[cand.name].digest, *others],
            )
            unit.digest = digest({"train": settings, "needs": unit.needs, "human_test": study.human_test})
            trains.append(unit)
        settings = stages.score_settings(study, task, lang)
        score = Unit("score", task, lang, settings, needs=[u.digest for u in trains])
        score.digest = digest({"score": settings, "needs": score.needs})
        units += [*gens.values(), *trains, score]
    return units


def mark_done(units: list[Unit], experiment: str) -> None:
    """Fill ``run_id`` of every unit that has a finished run (one search query for the whole study)."""
    from rose.tracking import search_runs

    done: dict[str, str] = {}
    for run in search_runs(experiment):
        unit = run.data.tags.get(UNIT_TAG)
        if unit and run.data.tags.get("mlflow.parentRunId") is None:
            done.setdefault(unit, run.info.run_id)
    for unit in units:
        unit.run_id = done.get(unit.digest)


def describe(units: list[Unit]) -> str:
    """The plan as text: one line per unit with its state, then counts per stage."""
    lines = []
    for unit in units:
        state = f"done ({unit.run_id[:8]})" if unit.run_id else "to run"
        lines.append(f"  [{state:>15}] {unit.label}")
    counts = Counter((u.stage, bool(u.run_id)) for u in units)
    summary = ", ".join(
        f"{stage}: {counts[(stage, True)]} done / {counts[(stage, True)] + counts[(stage, False)]}"
        for stage in ("generate", "train", "score")
    )
    return "\n".join([*lines, f"plan: {summary}"])
