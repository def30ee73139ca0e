"""The pre-race: a study ranks its candidates by rose_probe once their data exists and fine-tunes only the best."""

from __future__ import annotations

import json
import random
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from rose.errors import RoseError
from rose.pipeline import prerace
from rose.tasks import get_task
from tests.fakes import LANGUAGE, SOURCE, tracking_db
from tests.tiny import make_tiny_classifier

LABELS = list(get_task("topic").labels)
GOOD, ALSO, SHUFFLED = "good", "also-good", "shuffled"


def test_choose_keeps_the_best_k_or_those_within_the_margin():
    scores = {"a": 0.60, "b": 0.58, "c": 0.40, "d": 0.55}
    assert prerace.choose(scores, prerace.PreRace(keep=2)) == (
        ["a", "b"], {"d": "rose_probe 0.550, not among the best 2", "c": "rose_probe 0.400, not among the best 2"})  # fmt: skip
    kept, dropped = prerace.choose(scores, prerace.PreRace(margin=0.05))
    assert kept == ["a", "b", "d"] and dropped == {"c": "rose_probe 0.400, more than 0.05 below the best (0.600)"}
    assert prerace.choose(scores, prerace.PreRace(keep=2, margin=0.01))[0] == ["a"]


@pytest.mark.parametrize("value, error", [
    ("yes", "is a mapping"), ({"keep": 0}, "needs keep"), ({"keep": -1}, "keep is a whole number"),
    ({"margin": -0.1}, "margin is a macro-F1 difference"), ({"best": 2}, "unknown setting 'best'"),
])  # fmt: skip
def test_bad_pre_race_settings_are_refused(value, error):
    with pytest.raises(RoseError, match=f"study.yaml:9: pre_race.*{error}"):
        prerace.parse(value, "study.yaml:9")
    assert prerace.parse(None, "x") is None and prerace.parse({"keep": 2}, "x") == prerace.PreRace(keep=2)


def write_candidate(path: Path, seed: int, shuffle: bool = False, per_label: int = 8) -> Path:
    """Texts whose words name their label (each label its own vocabulary); ``shuffle`` scrambles the labels."""
    rng = random.Random(seed)
    rows = []
    for label in LABELS:
        words = [f"{label.split('/')[0]}{k}" for k in range(4)] + [label.split("/")[0]] * 2
        rows += [(" ".join(rng.choice(words) for _ in range(6)) + f" note {rng.randint(0, 99)}", label)
                 for _ in range(per_label)]  # fmt: skip
    labels = [lab for _, lab in rows]
    if shuffle:
        rng.shuffle(labels)
    path.write_text("\n".join(json.dumps({"text": t, "label": lab}) for (t, _), lab in zip(rows, labels, strict=True)))
    return path


def study(folder: Path, classifier: Path, pre_race: str) -> Path:
    files = {name: write_candidate(folder / f"{name}.jsonl", i, name == SHUFFLED)
             for i, name in enumerate((GOOD, ALSO, SHUFFLED))}  # fmt: skip
    text = textwrap.dedent(f"""\
        experiment: raced
        tasks: [topic]
        languages: [{LANGUAGE}]
        source: {SOURCE}
        candidates:
          - {{data: {files[GOOD]}, name: {GOOD}}}
          - {{data: {files[ALSO]}, name: {ALSO}}}
          - {{data: {files[SHUFFLED]}, name: {SHUFFLED}}}
        train: {{classifier: {classifier}, seeds: [1], per_label: 6, max_epochs: 1, patience: 1}}
        score: {{reference_lm: "", embedding_model: "", tokenizer: "", bootstrap: 20}}
        pre_race: {pre_race}
        """)
    path = folder / "study.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def store(tmp_path, monkeypatch):
    import mlflow

    uri = tracking_db(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_classifier(tmp_path_factory.mktemp("tiny") / "clf")


def test_a_pre_raced_plan_drops_the_shuffled_candidate_once_the_data_exists(store, tiny, caplog):
    from rose.pipeline import plan, stages
    from rose.pipeline.study import load_study

    path = study(store, tiny, f"{{keep: 2, encoder: {tiny}}}")
    raced = load_study(path)
    first = plan.build(raced, plan.Facts.load("raced"))  # nothing generated yet: every candidate is planned
    assert Counter(u.stage for u in first.units)["train"] == 4
    assert any("once good, also-good, shuffled are generated" in n for n in first.notes)
    stages.run_units(str(path), [u for u in first.units if u.stage == "generate"])  # the three imports
    with caplog.at_level("WARNING", logger="rose.pipeline.prerace"):
        second = plan.build(raced, plan.Facts.load("raced"))
    trained = sorted(u.who for u in second.units if u.stage == "train")
    assert trained == sorted([GOOD, ALSO, "human (baseline)"])
    assert {u.on for u in second.units if u.stage == "evaluate"} == {GOOD, ALSO, "human"}
    assert [u.settings["candidates"] for u in second.units if u.stage == "score"] == [[GOOD, ALSO]]
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "dropped shuffled (rose_probe" in said[0] and "not among the best 2" in said[0]
    assert any("dropped shuffled" in n for n in second.notes)
    plan.build(raced, plan.Facts.load("raced"))  # rebuilt before each stage: ranked once, said once
    assert len([r for r in caplog.records if r.name == "rose.pipeline.prerace"]) == 1


@pytest.mark.slow
def test_a_pre_raced_study_fine_tunes_only_the_kept_candidates(store, tiny):
    from rose.pipeline.run import run_pipeline
    from rose.tracking import search_runs

    path = study(store, tiny, f"{{margin: 0.05, keep: 2, encoder: {tiny}}}")
    result = run_pipeline(path)
    trains = [r for r in search_runs("raced", stage="train") if r.data.tags.get("rose.role") == "setting"]
    assert sorted(r.data.tags["rose.train_data"] for r in trains) == sorted([GOOD, ALSO, "human"])
    assert not [r for r in search_runs("raced", stage="evaluate") if SHUFFLED in
                (r.data.tags.get("rose.train_data"), r.data.tags.get("rose.eval_set"))]  # fmt: skip
    assert any("dropped shuffled" in n for n in result.notes)
    (score,) = search_runs("raced", stage="score")
    assert score.data.tags["rose.champion"] in (GOOD, ALSO)
