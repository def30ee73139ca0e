"""The plan of a study: units of work, their inputs, their digests, and what is already done.

Units per case (task and language):
- ``generate``: one per candidate; its digest covers its generate settings.
- ``train``: one per candidate (all seeds), and the human-data baseline when the study has a human test set. Its
  digest covers only its own training data (the candidate's generate unit, or the content of the human train
  split) and its training settings (with the per-label count the case is cut to).
- ``evaluate``: one cell per (train unit, dataset): each candidate's classifier on every other candidate's data
  and on the human test set; the baseline on the human test set. Its digest covers the train unit, the dataset
  (a generate unit, or the content of the human test split) and the evaluation settings.
- ``score``: one per case; its digest covers its settings and every unit it reads.

A unit is done when a finished top-level run records it: the tag ``rose.unit.<digest>`` (one tag per unit a run
serves, never overwritten, so two unit digests that map to one run never flip each other; design rule 5 of
docs/CONTRACTS.md). So
adding a candidate runs its generation, its training, its cells and the score; removing one runs only the score;
changing the human test set runs its cells and the score, never a training.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rose import tracking
from rose.generate.identity import by_content
from rose.generated_data import HUMAN_NAME, load_ref
from rose.human_data import split_digest
from rose.languages import get_language
from rose.naming import metric_key
from rose.pipeline import prerace
from rose.pipeline.study import Candidate, Study, generate_settings, score_settings, train_settings
from rose.tasks import get_task
from rose.train.cells import EVAL_SETTINGS
from rose.train.config import TrainConfig

__all__ = [
    "Facts",
    "Plan",
    "Unit",
    "build",
    "describe",
    "generate_settings",
    "resolve",
    "score_settings",
    "train_settings",
]

log = logging.getLogger(__name__)

UNIT_TAG = "rose.unit"  # rose.unit.<digest>: the units a run serves (older runs: rose.unit=<digest>, one unit)


def unit_tag(digest: str) -> str:
    """The tag that records a run serves the unit ``digest``."""
    return f"{UNIT_TAG}.{digest}"


def served_units(tags: dict[str, str]) -> list[str]:
    """The unit digests a run's tags record (``rose.unit.<digest>`` keys, and the older single ``rose.unit``)."""
    prefix = UNIT_TAG + "."
    units = [key[len(prefix) :] for key in tags if key.startswith(prefix)]
    if tags.get(UNIT_TAG):
        units.append(tags[UNIT_TAG])
    return units


STAGES = tracking.STAGES[:4]  # the stages of a study's units in the order they run: the run schema's first four


@dataclass
class Unit:
    stage: str  # generate, train, evaluate or score
    task: str
    language: str
    settings: dict[str, Any]  # the stage's config values, before run ids are filled in
    digest: str = ""
    candidate: Candidate | None = None  # generate: the candidate; train and evaluate: whose data trained
    seeds: list[int] = field(default_factory=list)
    needs: list[str] = field(default_factory=list)  # digests of units whose runs this one reads
    data: str = ""  # train: training data ref; evaluate: the dataset ref (``human:`` refs; run ids filled later)
    on: str = ""  # evaluate: the dataset's name (a candidate, or ``human``)
    run_id: str | None = None  # the finished run, once known
    inputs: dict[str, Any] = field(default_factory=dict)  # run ids of what it reads, filled by :func:`fill`
    n_train: int = 0  # score: its first ``n_train`` needs are the train units it reads (the rest are cells)

    @property
    def who(self) -> str:
        if self.stage == "score":
            return "all candidates"
        return self.candidate.name if self.candidate else f"{HUMAN_NAME} (baseline)"

    @property
    def label(self) -> str:
        seeds = f" seeds {','.join(map(str, self.seeds))}" if self.seeds else ""
        on = f" on {self.on}" if self.on else ""
        return f"{self.stage:<8} {get_task(self.task).name}/{self.language} {self.who}{on}{seeds}"


@dataclass
class Plan:
    units: list[Unit]
    notes: list[str] = field(default_factory=list)  # what the study should say (short candidates, the cut)

    def by_digest(self) -> dict[str, Unit]:
        return {u.digest: u for u in self.units}


# --- building the plan -----------------------------------------------------------------------------------------
class Facts:
    """What the tracking store says about a study: finished units and the label counts of generate runs."""

    def __init__(self, runs: list | None = None):
        self.done: dict[str, str] = {}
        self.metrics: dict[str, dict[str, float]] = {}
        for run in runs or []:
            # a seed is nested under its train parent; every other rose run serves units, also when a study runs
            # inside an `mlflow run` run and so is nested under it
            if run.data.tags.get("rose.role") != "seed":
                for unit in served_units(run.data.tags):
                    self.done.setdefault(unit, run.info.run_id)
            if run.data.tags.get("rose.stage") == "generate":
                self.metrics[run.info.run_id] = dict(run.data.metrics)
        self._counts: dict[str, Counter] = {}

    @classmethod
    def load(cls, experiment: str) -> Facts:
        return cls(tracking.search_runs(experiment))  # one search query for the whole study

    def counts(self, run_id: str, task: str, language: str) -> Counter:
        """Examples per label of a generate run's dataset: its ``kept/<label>`` metrics, else its rows."""
        if run_id not in self._counts:
            labels = get_task(task).labels
            metrics = self.metrics.get(run_id, {})
            keys = {label: metric_key("kept", label=label) for label in labels}
            if all(k in metrics for k in keys.values()):
                self._counts[run_id] = Counter({lab: int(metrics[k]) for lab, k in keys.items()})
            else:  # an imported dataset, or an older run: count its rows
                data = load_ref(run_id, task, language, strict_labels=False)
                self._counts[run_id] = Counter({lab: n for lab, n in data.counts().items() if lab in labels})
        return self._counts[run_id]


def _cut(study: Study, task: str, language: str, gens: dict[str, Unit], facts: Facts, notes: list[str]) -> int:
    """The examples per label every candidate of the case is trained on (with ``equal_per_label``)."""
    asked = int(train_settings(study, task, language).get("per_label", TrainConfig.per_label))
    labels = get_task(task).labels
    case = f"{get_task(task).name}/{language}"  # a task file's task by its name
    pending: list[str] = []
    lowest: dict[str, int] = {}  # per generated candidate: its smallest positive count of a label
    for name, unit in gens.items():
        run_id = facts.done.get(unit.digest)
        if not run_id:
            pending.append(name)
            continue
        counts = facts.counts(run_id, task, language)
        short = {lab: counts.get(lab, 0) for lab in labels if counts.get(lab, 0) < asked}
        if short:
            notes.append(f"{case}: {name} fell short of {asked} examples per label: "
                         + ", ".join(f"{lab} {n}" for lab, n in sorted(short.items())))  # fmt: skip
        missing = [lab for lab, n in short.items() if n == 0]
        if missing:
            notes.append(f"{case}: {name} has no example of {', '.join(sorted(missing))}: the cut "
                         "ignores those labels (its classifier never saw them)")  # fmt: skip
        positive = [n for n in short.values() if n > 0]
        if positive:
            lowest[name] = min(positive)
    cut = min([asked, *lowest.values()])
    if not study.equal_per_label:
        if cut < asked:
            notes.append(f"{case}: equal_per_label is off: candidates are trained on up to {asked} "
                         "examples per label each, so their counts differ")  # fmt: skip
        return asked
    floor = min(asked, study.min_per_label or math.ceil(asked / 2))
    if cut < floor:  # one weak label of one candidate must not starve every classifier of the study
        below = sorted(name for name, n in lowest.items() if n < floor)
        notes.append(f"{case}: the common count stays at {floor} per label (min_per_label): "
                     f"{', '.join(below)} {'is' if len(below) == 1 else 'are'} trained on fewer examples of the "
                     "labels they fell short on")  # fmt: skip
        cut = floor
    if cut < asked:
        notes.append(f"{case}: every candidate (and the human baseline) is cut to {cut} examples "
                     "per label, the smallest count (equal_per_label)")  # fmt: skip
    if pending:
        notes.append(f"{case}: the per-label count ({cut}) is provisional until "
                     f"{', '.join(pending)} {'is' if len(pending) == 1 else 'are'} generated")  # fmt: skip
    return cut


def build(study: Study, facts: Facts | None = None) -> Plan:
    """Every unit of the study, in an order that respects dependencies; ``facts`` marks what is done."""
    facts = facts or Facts()
    units: list[Unit] = []
    notes: list[str] = []
    for task, lang in study.cases():
        gens: dict[str, Unit] = {}
        for cand in study.candidates:
            settings = generate_settings(study, task, lang, cand)
            digest = tracking.digest({"generate": identity(by_content(settings))})  # files by their content
            gens[cand.name] = Unit("generate", task, lang, settings, digest, cand)
        racing = _racing(study, task, lang, gens, facts, notes)  # all, or the pre-race's pick
        cut = _cut(study, task, lang, {c.name: gens[c.name] for c in racing}, facts, notes)
        settings = train_settings(study, task, lang, per_label=cut)
        trains: dict[str, Unit] = {}
        for cand in racing:
            gen = gens[cand.name]
            trains[cand.name] = Unit("train", task, lang, settings, tracking.digest({"train": identity(settings),
                                     "data": gen.digest}), cand, settings["seeds"], [gen.digest])  # fmt: skip
        cells: list[Unit] = []
        for cand in racing:
            for other in racing:
                if other.name != cand.name:
                    cells.append(_cell(trains[cand.name], gens[other.name].digest, other.name, [gens[other.name]]))
        if study.human_test:
            test_key = "human:" + _human_digest(study, task, lang, "test")
            if names_split(task, "train"):
                train_key = "human:" + _human_digest(study, task, lang, "train")
                baseline = Unit("train", task, lang, settings, tracking.digest({"train": identity(settings),
                                "data": train_key}), None, settings["seeds"], data=study.human_train_ref)  # fmt: skip
                trains[HUMAN_NAME] = baseline
            else:
                notes.append(f"{task}/{lang}: no human-data baseline: the task's human_data.files names no train "
                             "split (only the human test set is used)")  # fmt: skip
            for train in trains.values():
                cells.append(_cell(train, test_key, HUMAN_NAME, [], data=study.human_test_ref))
        score_set = {**score_settings(study, task, lang), "candidates": [c.name for c in racing]}
        needs = [u.digest for u in (*trains.values(), *cells)]
        score = Unit("score", task, lang, score_set, tracking.digest({"score": identity(score_set), "needs": sorted(needs)}),
                     needs=needs, data=study.human_test_ref if study.human_test else "",
                     n_train=len(trains))  # fmt: skip
        units += [*gens.values(), *trains.values(), *cells, score]
    for unit in units:
        unit.run_id = facts.done.get(unit.digest)
    plan = Plan(units, notes)
    resolve(plan)
    return plan


def names_split(task: str, split: str) -> bool:
    """Whether the task has a human ``split``: a task whose human data is one file per split may name no training
    file (a published test set alone); a folder layout or a hub dataset is taken to have every split."""
    files = get_task(task).human_data.get("files")
    return not files or split in files


def identity(settings: dict) -> dict:
    """A unit's settings as its digest covers them: the task by its content (never its name or path alone), the
    language by code and name (docs/CONTRACTS.md, "Identities", rules 2 and 3)."""
    language = get_language(settings["language"], settings.get("language_name") or None)
    return {**settings, "task": get_task(settings["task"]).digest, "language": language.to_dict()}


def _racing(study: Study, task: str, language: str, gens: dict[str, Unit], facts: Facts,
            notes: list[str]) -> list[Candidate]:  # fmt: skip
    """The candidates to fine-tune: every one, or with ``pre_race`` the best by rose_probe once all are generated."""
    run_ids = {c.name: facts.done.get(gens[c.name].digest) for c in study.candidates}
    encoder = str(study.score.get("embedding_model") or "multilingual-e5-small")
    seeds = train_settings(study, task, language)["seeds"]
    keep = prerace.kept(study.pre_race, task, language, run_ids, encoder=encoder, seeds=seeds, notes=notes)
    return [c for c in study.candidates if c.name in keep]


def _cell(train: Unit, data_key: str, on: str, data_units: list[Unit], data: str = "") -> Unit:
    digest = tracking.digest({"evaluate": EVAL_SETTINGS, "train": train.digest, "data": data_key})
    return Unit("evaluate", train.task, train.language, {"experiment": train.settings["experiment"]}, digest,
                train.candidate, needs=[train.digest, *(u.digest for u in data_units)], data=data, on=on)  # fmt: skip


def _human_digest(study: Study, task: str, language: str, split: str) -> str:
    source = study.human_test_source if split == "test" and study.human_test_source else study.source
    return split_digest(task, language, split, source)


def resolve(plan: Plan) -> None:
    """Fill each unit's ``inputs`` (the run ids it reads) from the units it needs that are done."""
    run_of = {u.digest: u.run_id for u in plan.units if u.run_id}
    for unit in plan.units:
        fill(unit, run_of)


def fill(unit: Unit, run_of: dict[str, str]) -> bool:
    """Fill ``unit.inputs`` from ``run_of`` (unit digest -> finished run id); False while a need is not done.

    The one place that knows what each kind of unit reads, used by the driver and by a worker (which learns the
    run ids of what it needs from the tasks it waited for)."""
    ids = [run_of.get(d) for d in unit.needs]
    if any(i is None for i in ids):
        return False
    if unit.stage == "train":
        unit.inputs = {"data": ids[0] if ids else unit.data}
    elif unit.stage == "evaluate":
        unit.inputs = {"train": ids[0], "data": ids[1] if len(ids) > 1 else unit.data}
    elif unit.stage == "score":
        unit.inputs = {"train_runs": ids[: unit.n_train], "human_test": unit.data}
    return True


def describe(plan: Plan) -> str:
    """The plan as text: one line per unit (reused, or to run), the study's notes, then counts per stage."""
    lines = []
    for unit in plan.units:
        state = f"reuse {unit.run_id[:8]}" if unit.run_id else "RUN"
        lines.append(f"  [{state:>14}] {unit.label}")
    lines += [f"  note: {note}" for note in plan.notes]
    counts = Counter((u.stage, bool(u.run_id)) for u in plan.units)
    summary = ", ".join(
        f"{stage}: {counts[(stage, True)]} done / {counts[(stage, True)] + counts[(stage, False)]}" for stage in STAGES
    )
    to_run = sum(not u.run_id for u in plan.units)
    return "\n".join([*lines, f"plan: {summary} ({to_run} to run)"])
