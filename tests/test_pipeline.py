"""The pipeline: study checks, the plan, resuming after kill -9, Ray, and a real tracking server."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from rose.errors import RoseError
from rose.pipeline.run import leaderboards
from rose.tasks import get_task
from tests.fakes import LANGUAGE, SHARED_DATA, SOURCE, mlflow_server, tracking_db
from tests.tiny import make_tiny_classifier, needs_shared

ROOT = Path(__file__).resolve().parents[1]


def study_yaml(
    folder: Path, classifier: Path, *, experiment: str = "study", seeds=(1, 2), epochs: int = 2, extra: str = ""
) -> Path:
    text = (
        textwrap.dedent(f"""\
        experiment: {experiment}
        tasks: [topic]
        languages: [{LANGUAGE}]
        source: {SOURCE}
        candidates:
          - {{generator: fake-a, strategy: zero_shot}}
          - {{generator: fake-b, strategy: target_demos}}
        generate:
          backend: fake
          per_label: 6
          examples_per_request: 6
          cache_dir: {folder / "cache"}
        train:
          classifier: {classifier}
          seeds: [{", ".join(map(str, seeds))}]
          per_label: 6
          max_epochs: {epochs}
          patience: {epochs}
          learning_rate: 1.0e-3
        score:
          reference_lm: ""
          embedding_model: ""
          tokenizer: ""
          bootstrap: 50
        """)
        + extra
    )
    path = folder / "study.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def tiny(tmp_path_factory) -> Path:
    return make_tiny_classifier(tmp_path_factory.mktemp("tiny") / "clf")


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    import mlflow

    uri = tracking_db(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)  # an earlier test may have pointed this process elsewhere
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- checks before anything runs -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda t: t.replace("source:", "language: en\nsource:"),
            r"study.yaml:4: unknown key 'language'",
        ),
        (lambda t: t.replace("strategy: zero_shot", "strategy: zero_shots"), r"study.yaml:6: .*unknown strategy"),
        (
            lambda t: t.replace("backend: fake\n", "backend: hf\n").replace("fake-a", "no-such-model"),
            r"study.yaml:6: .*unknown model 'no-such-model'",
        ),
        (
            lambda t: t.split("candidates:")[0] + "candidates: []\n" + "generate: {backend: fake}\n",
            r"study.yaml:5: the study has no candidates",
        ),
        (
            lambda t: t.replace("per_label: 6\n  examples", "per_lable: 6\n  examples"),
            r"study.yaml:10: generate: unknown setting 'per_lable'",
        ),
        (lambda t: t.replace("tasks: [topic]", "tasks: [topics]"), r"study.yaml:2: unknown task 'topics'"),
    ],
)
def test_bad_config_is_refused_with_line_and_fix(tmp_path, tiny, edit, message):
    from rose.pipeline.study import load_study

    path = study_yaml(tmp_path, tiny)
    path.write_text(edit(path.read_text()))
    with pytest.raises(RoseError, match=message):
        load_study(path)


def test_dry_run_prints_plan_and_runs_nothing(store, tiny, capsys):
    from rose.cli import main
    from rose.tracking import search_runs

    path = study_yaml(store, tiny)
    assert main(["pipeline", "--config", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "plan: generate: 0 done / 2, train: 0 done / 3, evaluate: 0 done / 5, score: 0 done / 1" in out
    assert "fake-a__zero_shot" in out and search_runs("study", finished_only=False) == []


def test_shipped_configs_are_valid():
    from rose.pipeline.plan import build
    from rose.pipeline.study import load_study

    demo = load_study(ROOT / "configs" / "demo.yaml")
    assert len(demo.candidates) >= 3 and demo.train["seeds"] == [1, 2, 3]
    rose = load_study(ROOT / "configs" / "rose.yaml")
    assert len(rose.candidates) == 6 and len({c.strategy for c in rose.candidates}) == 1
    assert rose.score["group_by"] == "strategy"  # RoSE: generators compared within a strategy
    if not (ROOT.parent / "shared" / "data").exists():  # paper.yaml names the descriptions under ../shared/data
        with pytest.raises(RoseError, match="no such descriptions file"):
            load_study(ROOT / "configs" / "paper.yaml")
        return
    paper = load_study(ROOT / "configs" / "paper.yaml")
    assert len(paper.candidates) == 28 and len(paper.cases()) == 33
    units = [u for u in build(paper).units if u.stage == "generate"]
    assert len(units) == 28 * 33
    assert {(u.task, Path(u.settings["descriptions"]).name) for u in units} == {
        ("intent", "massive10_llama3-70b.csv"), ("topic", "sib200_llama3-70b.csv"), ("sentiment", "sentiment.csv")
    }  # fmt: skip
    assert paper.score["group_by"] == "generator" and paper.train["protocol"] == "reference"
    assert {c.generator for c in paper.candidates} == {
        "google/gemma-3-4b-it", "google/gemma-3-27b-it", "meta-llama/Meta-Llama-3-8B-Instruct",
        "TechxGenus/Meta-Llama-3-70B-Instruct-GPTQ"}  # fmt: skip


def test_descriptions_per_task_are_checked_with_the_study(tmp_path):
    from rose.pipeline.study import load_study

    good = tmp_path / "topic.csv"
    good.write_text("label,description\n" + "".join(f"{lab},About {lab}\n" for lab in get_task("topic").labels))
    study = tmp_path / "study.yaml"
    base = "tasks: [topic]\nlanguages: [cy]\ncandidates: [{generator: fake-a, strategy: sl}]\n"
    for descriptions, error in (
        (f"{{topic: {good}}}", None),
        (f"{{topic: {good}, intent: {good}}}", r"study.yaml:\d+: descriptions for 'intent', which is not a task"),
        ("{sentiment: x.csv}", r"study.yaml:\d+: descriptions for 'sentiment'"),
        (f"{{topic: {tmp_path / 'none.csv'}}}", r"study.yaml:\d+: no such descriptions file"),
    ):
        study.write_text(base + f"generate: {{backend: fake, descriptions: {descriptions}}}\n")
        if error is None:
            assert load_study(study).generate["descriptions"] == {"topic": str(good)}
        else:
            with pytest.raises(RoseError, match=error):
                load_study(study)
    (tmp_path / "half.csv").write_text("label,description\ntravel,About travel\n")
    study.write_text(base + f"generate: {{backend: fake, descriptions: {{topic: {tmp_path / 'half.csv'}}}}}\n")
    with pytest.raises(RoseError, match=r"study.yaml:\d+: .*half.csv: no description for label\(s\) science"):
        load_study(study)


# --- running a study -----------------------------------------------------------------------------------------
def _finished(experiment: str):
    from rose.tracking import search_runs

    return search_runs(experiment)


A, B = "fake-a__zero_shot", "fake-b__target_demos"


def _check_exactly_once(experiment: str, seeds=(1, 2)) -> None:
    import mlflow

    runs = _finished(experiment)
    stages = Counter(r.data.tags["rose.stage"] for r in runs)
    assert stages["generate"] == 2 and stages["score"] == 1 and stages["pipeline"] >= 1
    seeds_done = Counter(
        (r.data.tags["rose.train_data"], r.data.tags["rose.seed"])
        for r in runs
        if r.data.tags.get("rose.role") == "seed"
    )
    assert seeds_done == {(c, str(s)): 1 for c in (A, B, "human") for s in seeds}
    settings = [r for r in runs if r.data.tags.get("rose.role") == "setting"]
    assert len(settings) == 3 and len({r.data.tags["rose.setting"] for r in settings}) == 1
    cells = Counter((r.data.tags["rose.train_data"], r.data.tags["rose.eval_set"]) for r in runs
                    if r.data.tags["rose.stage"] == "evaluate")  # fmt: skip
    assert cells == {(A, B): 1, (B, A): 1, (A, "human"): 1, (B, "human"): 1, ("human", "human"): 1}
    for run in runs:
        if run.data.tags["rose.stage"] == "evaluate":
            assert all(f"seed/{s}/macro_f1" in run.data.metrics for s in seeds)
    model = mlflow.pyfunc.load_model(f"models:/rose-topic-{LANGUAGE}@champion")
    assert len(model.predict(["Mae'r tîm wedi ennill y gêm."])) == 1


def _stages(experiment: str) -> Counter:
    """Finished runs per stage (train: setting runs only)."""
    return Counter(r.data.tags["rose.stage"] for r in _finished(experiment) if r.data.tags.get("rose.role") != "seed")


def _planned(path: Path) -> list[str]:
    from rose.pipeline.run import run_pipeline

    text = run_pipeline(path, dry_run=True).plan
    return sorted(line.split("] ", 1)[1] for line in text.splitlines() if line.startswith("  [") and "RUN]" in line)


def test_growing_a_planned_study_plans_only_the_new_units(tmp_path, tiny):
    from rose.naming import metric_key
    from rose.pipeline import plan
    from rose.pipeline.study import load_study
    from rose.tasks import get_task

    path = study_yaml(tmp_path, tiny)
    before = plan.build(load_study(path))
    facts = plan.Facts()
    facts.done = {u.digest: f"run-{i}" for i, u in enumerate(before.units)}  # everything of the first study ran
    kept = {metric_key("kept", label=label): 6.0 for label in get_task("topic").labels}  # no candidate fell short
    facts.metrics = {f"run-{i}": kept for i in range(10)}
    path.write_text(path.read_text().replace(
        "strategy: target_demos}", "strategy: target_demos}\n  - {generator: fake-c, strategy: zero_shot}"))  # fmt: skip
    grown = plan.build(load_study(path), facts)
    todo = sorted((u.stage, u.who, u.on) for u in grown.units if not u.run_id)
    c = "fake-c__zero_shot"
    assert todo == sorted([("generate", c, ""), ("train", c, ""), ("evaluate", A, c), ("evaluate", B, c),
                           ("evaluate", c, A), ("evaluate", c, B), ("evaluate", c, "human"),
                           ("score", "all candidates", "")])  # fmt: skip
    facts.done.update({u.digest: f"run-{i}" for i, u in enumerate(grown.units)})
    path.write_text(path.read_text().replace("  - {generator: fake-a, strategy: zero_shot}\n", ""))
    shrunk = plan.build(load_study(path), facts)
    assert [(u.stage, u.who) for u in shrunk.units if not u.run_id] == [("score", "all candidates")]
    path.write_text(path.read_text() + "human_test: /elsewhere/data\n")
    with pytest.raises(RoseError, match="no human data at /elsewhere/data"):
        plan.build(load_study(path), facts)


def test_a_short_candidate_cuts_every_candidate_to_its_count(tmp_path, tiny):
    from rose.naming import metric_key
    from rose.pipeline import plan
    from rose.pipeline.study import load_study
    from rose.tasks import get_task

    path = study_yaml(tmp_path, tiny)
    first = plan.build(load_study(path))
    gens = [u for u in first.units if u.stage == "generate"]
    facts = plan.Facts()
    facts.done = {u.digest: u.who for u in gens}
    kept = {metric_key("kept", label=label): 6.0 for label in get_task("topic").labels}
    facts.metrics = {A: kept, B: {**kept, metric_key("kept", label="travel"): 4.0}}
    cut = plan.build(load_study(path), facts)
    trains = [u for u in cut.units if u.stage == "train"]
    assert [u.settings["per_label"] for u in trains] == [4, 4, 4]  # both candidates and the human baseline
    assert any(f"{B} fell short of 6 examples per label: travel 4" in n for n in cut.notes)
    assert any("cut to 4 examples per label" in n for n in cut.notes)
    path.write_text(path.read_text() + "equal_per_label: false\n")
    uncut = plan.build(load_study(path), facts)
    assert {u.settings["per_label"] for u in uncut.units if u.stage == "train"} == {6}
    assert any("equal_per_label is off" in n for n in uncut.notes)


def test_the_cut_never_goes_below_its_floor(tmp_path, tiny):
    from rose.naming import metric_key
    from rose.pipeline import plan
    from rose.pipeline.study import load_study
    from rose.tasks import get_task

    path = study_yaml(tmp_path, tiny)  # 6 per label asked: the default floor is 3
    gens = [u for u in plan.build(load_study(path)).units if u.stage == "generate"]
    facts = plan.Facts()
    facts.done = {u.digest: u.who for u in gens}
    kept = {metric_key("kept", label=label): 6.0 for label in get_task("topic").labels}
    facts.metrics = {A: kept, B: {**kept, metric_key("kept", label="travel"): 1.0}}  # one example of one label
    cut = plan.build(load_study(path), facts)
    assert {u.settings["per_label"] for u in cut.units if u.stage == "train"} == {3}
    assert any(f"stays at 3 per label (min_per_label): {B} is trained on fewer" in n for n in cut.notes)
    path.write_text(path.read_text() + "min_per_label: 1\n")  # the floor lowered by hand: the plain smallest count
    assert {u.settings["per_label"] for u in plan.build(load_study(path), facts).units if u.stage == "train"} == {1}
    path.write_text(path.read_text().replace("min_per_label: 1", "min_per_label: -2"))
    with pytest.raises(RoseError, match="min_per_label must be a whole number"):
        load_study(path)


def test_a_run_serving_two_units_records_both_and_the_plans_never_flip(store, tiny):
    """Two studies whose generate units differ only in a setting outside the run's digest (the cache folder) share
    one generate run; each unit is recorded on it as its own tag (``rose.unit.<digest>``), so neither plan flips."""
    from rose.pipeline import plan, stages
    from rose.pipeline.study import load_study
    from rose.tracking import search_runs

    one = study_yaml(store, tiny)
    other = store / "other" / "study.yaml"
    other.parent.mkdir()
    other.write_text(one.read_text().replace(str(store / "cache"), str(store / "other-cache")))

    def generations(path: Path) -> list:
        return [u for u in plan.build(load_study(path), plan.Facts.load("study")).units if u.stage == "generate"]

    first, second = generations(one), generations(other)
    assert not {u.digest for u in first} & {u.digest for u in second}
    ran = dict(stages.run_units("study", first))
    assert dict(stages.run_units("study", generations(other))) == {
        b.digest: ran[a.digest] for a, b in zip(first, second, strict=True)}  # fmt: skip
    for path in (one, other, one):
        assert all(u.run_id for u in generations(path)), f"{path}: a generation flipped back to RUN"
    runs = [r for r in search_runs("study") if r.data.tags["rose.stage"] == "generate"]
    assert len(runs) == 2
    for run in runs:
        assert len(plan.served_units(run.data.tags)) == 2


def test_a_score_unit_is_claimed_once_per_digest(store, monkeypatch):
    """A score unit run twice (a retry, a second driver) finds the first finished score run: one run per digest."""
    import mlflow

    from rose import tracking
    from rose.score import run as score_run
    from rose.score.config import ScoreConfig

    tracking.setup("scored")
    calls = []

    def fake_body(config, digests, digest, claim):  # the scoring itself is tested elsewhere: count how often it runs
        calls.append(digest)
        with tracking.run("score", tracking.tags("score", "topic", "en", digest=digest), run_id=claim.run_id,
                          lease=claim.lease) as active:  # fmt: skip
            return score_run.ScoreResult(active.info.run_id, [], None, Path())

    monkeypatch.setattr(score_run, "_score", fake_body)
    config = ScoreConfig(task=["topic"], language=["en"], experiment="scored")
    first = score_run.score(config, digest="unit-1")
    again = score_run.score(config, digest="unit-1")
    assert again.run_id == first.run_id and calls == ["unit-1"]
    assert score_run.score(config, digest="unit-2").run_id != first.run_id
    runs = mlflow.MlflowClient().search_runs([tracking.setup("scored")], "tags.`rose.stage` = 'score'")
    assert sorted(r.data.tags["rose.digest"] for r in runs) == ["unit-1", "unit-2"]


@pytest.mark.slow
@needs_shared
def test_study_grows_shrinks_and_changes_its_human_test_set_running_only_new_units(store, tiny):
    import shutil

    from rose.pipeline.run import run_pipeline

    data = store / "data"
    for split in ("train", "test"):
        (data / "sib200" / "cy").mkdir(parents=True, exist_ok=True)
        shutil.copy(SHARED_DATA / "sib200" / "cy" / f"{split}.jsonl", data / "sib200" / "cy" / f"{split}.jsonl")
    c, d = "fake-c__zero_shot", "fake-d__zero_shot"
    three = "\n  - {generator: fake-c, strategy: zero_shot}"
    path = study_yaml(store, tiny, seeds=(1,), epochs=1)
    text = path.read_text().replace(str(SHARED_DATA), str(data))
    path.write_text(text.replace("strategy: target_demos}", "strategy: target_demos}" + three))
    first = run_pipeline(path)
    assert _stages("study") == {"generate": 3, "train": 4, "evaluate": 3 * 2 + 4, "score": 1, "pipeline": 1}
    # one task at a time: the seconds per kind (a worker running its tasks) add up to no more than the wall time
    assert set(first.stage_s) == {"generate", "train", "evaluate", "score"}
    assert 0 < sum(first.stage_s.values()) <= first.wall_s
    # grown to four: the plan and the run are its generation, its training, 7 cells and the score
    path.write_text(path.read_text().replace(three, three + "\n  - {generator: fake-d, strategy: zero_shot}"))
    new = [f"generate topic/cy {d}", f"train    topic/cy {d} seeds 1", f"evaluate topic/cy {d} on human",
           *(f"evaluate topic/cy {x} on {d}" for x in (A, B, c)), *(f"evaluate topic/cy {d} on {x}" for x in (A, B, c)),
           "score    topic/cy all candidates"]  # fmt: skip
    assert _planned(path) == sorted(new)
    assert run_pipeline(path).ran == 10
    assert _stages("study") == {"generate": 4, "train": 5, "evaluate": 10 + 7, "score": 2, "pipeline": 2}
    # shrunk (a removed): only the score runs, and its leaderboard has the three that are left
    path.write_text(path.read_text().replace("  - {generator: fake-a, strategy: zero_shot}\n", ""))
    shrunk = run_pipeline(path)
    assert shrunk.ran == 1 and _stages("study")["score"] == 3 and _stages("study")["evaluate"] == 17
    assert "fake-a__zero_shot" not in leaderboards(shrunk.score_runs)
    # a changed human test set: each classifier's human cell again (3 candidates + the baseline), no training
    test = data / "sib200" / "cy" / "test.jsonl"
    test.write_text("".join(test.read_text().splitlines(keepends=True)[:-20]))
    changed = run_pipeline(path)
    assert changed.ran == 5 and set(changed.stage_s) == {"evaluate", "score"}
    assert _stages("study") == {"generate": 4, "train": 5, "evaluate": 17 + 4, "score": 4, "pipeline": 4}


@pytest.mark.slow
def test_pipeline_killed_during_training_finishes_with_every_run_once(store, tiny):
    path = study_yaml(store, tiny, seeds=(1, 2, 3), epochs=6)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "rose.cli", "pipeline", "--config", str(path)]
    output = store / "killed.log"  # a file, not a pipe: a pipe nobody reads (here, or after the kill, by the units
    with output.open("w") as sink:  # the killed driver leaves finishing) would fill up and stop whoever writes to it
        proc = subprocess.Popen(cmd, cwd=store, env=env, stdout=subprocess.DEVNULL, stderr=sink)
    try:  # no deadline: on a slow machine the first seed is simply seen later
        while proc.poll() is None:
            seeds = [r for r in _finished("study") if r.data.tags.get("rose.role") == "seed"]
            if seeds:  # training has begun and one seed is done: stop the whole study hard
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.3)
    finally:
        if proc.poll() is None:
            proc.kill()  # the test failed while watching: never leave the study running
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, output.read_text()[-2000:]  # else it ended before a seed was seen
    assert not [r for r in _finished("study") if r.data.tags["rose.stage"] == "score"]
    # the timeouts below guard against a hang only: far above what a slow, loaded machine needs
    done = subprocess.run(cmd, cwd=store, env=env, capture_output=True, text=True, timeout=2400)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"RoSE leaderboard: task topic, language {LANGUAGE}" in done.stdout
    _check_exactly_once("study", seeds=(1, 2, 3))
    again = subprocess.run(cmd + ["--dry-run"], cwd=store, env=env, capture_output=True, text=True, timeout=900)
    assert "plan: generate: 2 done / 2, train: 3 done / 3, evaluate: 5 done / 5, score: 1 done / 1" in again.stdout


@pytest.mark.slow
def test_ray_executor_runs_the_same_plan(store, tiny):
    pytest.importorskip("ray")
    import ray

    from rose.pipeline.run import run_pipeline

    path = study_yaml(store, tiny, experiment="ray-study")
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    try:
        result = run_pipeline(path, executor="ray")
    finally:
        ray.shutdown()
    assert result.score_runs and result.ran == 11
    _check_exactly_once("ray-study")


@pytest.mark.slow
def test_study_against_a_tracking_server_from_several_workers(tmp_path, tiny, monkeypatch):
    import mlflow

    from rose.pipeline.run import run_pipeline
    from rose.train.pyfunc import model_uri

    with mlflow_server(tmp_path, monkeypatch):
        path = study_yaml(tmp_path, tiny, experiment="server-study")
        result = run_pipeline(path, max_parallel=2)
        assert result.ran == 11
        _check_exactly_once("server-study")
        client = mlflow.MlflowClient()
        for run in _finished("server-study"):
            names = {a.path for a in client.list_artifacts(run.info.run_id)}
            if run.data.tags["rose.stage"] == "generate":
                assert "dataset" in names
            if run.data.tags.get("rose.role") == "seed":
                assert len(client.get_metric_history(run.info.run_id, "val/macro_f1")) >= 1
                assert len(mlflow.pyfunc.load_model(model_uri(run.info.run_id)).predict(["Y tywydd"])) == 1
            if run.data.tags["rose.stage"] == "evaluate":
                assert {"confusion/seed1.csv", "confusion/seed2.csv"} <= {
                    a.path for a in client.list_artifacts(run.info.run_id, "confusion")}  # fmt: skip
        assert not (tmp_path / "mlflow.db").exists()  # nothing went to a local store


# --- the graph, resources, file inputs by content -------------------------------------------------------------
def test_dry_run_shows_the_graph_with_what_each_task_waits_for(store, tiny, capsys):
    from rose.cli import main

    path = study_yaml(store, tiny, extra="resources: {train: {gpus: 0.25, cpus: 2}, generate: {timeout_s: 60}}\n")
    assert main(["pipeline", "--config", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    graph = out.split("graph (")[1].splitlines()[1:]
    assert len(graph) == 2 + 3 + 3 + 1  # two generations, three trainings, cells per training, the score
    lines = {line.split()[0]: line for line in graph}
    assert lines["g1"].endswith("[1 CPU, limit 60 s]") and "<-" not in lines["g1"]  # fake: no GPU
    assert "<- g1 g2" in lines["t1"] and lines["t1"].endswith("[0.25 GPU, 2 CPU]")  # the cut waits for both
    assert "<- g1 g2" in lines["t3"]  # the human baseline too
    assert lines["e1"].split("<- ")[1].split()[:2] == ["t1", "g2"]  # a's cells: its training and b's data
    assert lines["s1"].split("<- ")[1].split("  [")[0].split() == ["t1", "t2", "t3", "e1", "e2", "e3"]


def test_a_prestarted_worker_that_never_had_a_task_is_ended_at_once():
    """A study with nothing left to run closes its prestarted worker without waiting for its imports."""
    from rose.pipeline import execute

    pool = execute.LocalPool(1, prestart=True)
    w = pool._idle[0]
    pool.close()
    assert not w.process.is_alive() and w.process.exitcode == -signal.SIGTERM


def test_time_per_kind_counts_tasks_running_not_waiting():
    from rose.pipeline.execute import Outcome, union_seconds

    assert union_seconds([]) == 0
    assert union_seconds([(0, 2), (1, 3), (5, 6), (5.5, 5.7)]) == 4  # overlaps counted once
    queued = Outcome(spans={"evaluate": [10.0, 40.0]}, busy={"evaluate": 12.0})
    assert queued.seconds() == {"evaluate": 12.0}  # the local pool's running time, not first queued to last end
    assert Outcome(spans={"train": [1.0, 4.0]}).seconds() == {"train": 3.0}  # Ray: submission to last end


def test_resources_follow_the_backend_and_the_study():
    from rose.pipeline import resources as res

    assert res.for_unit("generate", "hf", {}).gpus == 1 and res.for_unit("generate", "vllm", {}).gpus == 1
    for backend in ("llamacpp", "openai", "fake", None):  # None: an imported candidate
        assert res.for_unit("generate", backend, {}).gpus == 0
    study = {"generate": {"gpus": 2, "cpus": 4}, "train": {"gpus": 0.5}}
    assert res.for_unit("generate", "llamacpp", study).gpus == 2  # asked for: llama.cpp can offload
    assert res.for_unit("generate", None, study).gpus == 0 and res.for_unit("generate", None, study).cpus == 4
    assert res.for_unit("train", None, {}).gpus == 0 and res.for_unit("train", None, {}, cluster_gpus=8).gpus == 1
    assert res.for_unit("train", None, study, cluster_gpus=8).gpus == 0.5
    assert res.for_unit("generate", "hf", {}).ray_options("generate")["max_calls"] == 1  # fresh worker per unit
    assert "max_calls" not in res.for_unit("train", None, study).ray_options("train")
    assert res.for_unit("score", None, {"score": {"memory_gb": 2}}).ray_options("score")["memory"] == 2 * 1024**3


@pytest.mark.parametrize("section, message", [
    ("{train: {gpu: 1}}", r"study.yaml:\d+: resources: train: unknown key 'gpu'"),
    ("{training: {gpus: 1}}", r"study.yaml:\d+: resources: unknown kind of unit 'training'"),
    ("{train: {gpus: -1}}", r"study.yaml:\d+: resources: train: gpus must be a number, 0 or more"),
    ("{train: {gpus: 1.5}}", r"gpus above 1 must be whole"),
    ("{score: {max_retries: 1.5}}", r"max_retries must be a whole number"),
])  # fmt: skip
def test_bad_resources_are_refused_with_their_line(tmp_path, tiny, section, message):
    from rose.pipeline.study import load_study

    path = study_yaml(tmp_path, tiny, extra=f"resources: {section}\n")
    with pytest.raises(RoseError, match=message):
        load_study(path)


def test_file_inputs_travel_by_content(tmp_path, tiny):
    """The driver packs the files a study names (of the data folder only what its cases read); a worker unpacks
    them once per node and runs its units on the copies."""
    from rose.pipeline import plan, shipping
    from rose.pipeline.study import load_study

    data = tmp_path / "data"
    shutil.copytree(SOURCE / "sib200" / LANGUAGE if (SOURCE / "sib200").exists() else SOURCE / LANGUAGE,
                    data / "sib200" / LANGUAGE)  # fmt: skip
    (data / "unrelated.bin").write_bytes(b"\0" * 1000)
    path = study_yaml(tmp_path, tiny)
    path.write_text(path.read_text().replace(str(SOURCE), str(data)))
    units = plan.build(load_study(path)).units
    store: dict[int, bytes] = {}

    def put(blob: bytes) -> int:
        store[len(store)] = blob
        return len(store) - 1

    shipped = shipping.ship(units, [("topic", LANGUAGE)], put)
    assert set(shipped) == {str(data)} and len(store) == 1
    home = tmp_path / "worker-home"
    local = shipping.unpack(shipped, home, store.__getitem__)
    copy = Path(local[str(data)])
    assert home in copy.parents and not (copy / "unrelated.bin").exists()
    for split in ("train", "test"):
        assert (copy / "sib200" / LANGUAGE / f"{split}.jsonl").read_bytes() == (
            data / "sib200" / LANGUAGE / f"{split}.jsonl").read_bytes()  # fmt: skip
    assert shipping.unpack(shipped, home, lambda ref: pytest.fail("unpacked twice")) == local
    shipping.rewrite(units, local)
    assert {u.settings["source"] for u in units if u.stage == "generate"} == {str(copy)}
    assert {u.data for u in units if u.stage == "evaluate" and u.on == "human"} == {f"human:{copy}"}


@pytest.mark.slow
def test_a_unit_past_its_time_limit_is_failed_and_retried_then_given_up(store, tiny):
    """The local executor: the unit's process ends its run FAILED when the limit passes, it is started again
    (which takes the failed run over), and after its retries the unit fails for good with the reason."""
    from rose.pipeline import execute, plan, worker
    from rose.pipeline.resources import Resources
    from rose.pipeline.study import load_study
    from rose.tracking import search_runs

    path = study_yaml(store, tiny)
    path.write_text(path.read_text().replace("generator: fake-a,", 'generator: "fake-a@4s",'))
    unit = next(u for u in plan.build(load_study(path)).units if u.stage == "generate")
    payload = worker.Payload("study", [unit], worker.environment(), timeout_s=3.0)
    started = time.perf_counter()
    with pytest.raises(execute.UnitFailed, match=r"past its time limit of 3 s, 1 retry used"):
        execute._in_process(payload, Resources(timeout_s=3.0, max_retries=1))
    runs = search_runs("study", finished_only=False, stage="generate")
    assert len(runs) == 1 and runs[0].info.status == "FAILED"  # the retry took the first attempt's run over
    assert "past its time limit of 3 s" in runs[0].data.tags["rose.error"]
    assert time.perf_counter() - started < 600


def test_units_nested_under_an_mlflow_run_run_are_done_and_seeds_are_not_units():
    """Under `mlflow run -e main` every unit's run is nested under the pipeline run MLflow started: it still
    counts as done (before, only top-level runs did, so such a study never saw its units finish)."""
    from types import SimpleNamespace

    from rose.pipeline.plan import Facts

    def run(run_id, **tags):
        return SimpleNamespace(info=SimpleNamespace(run_id=run_id), data=SimpleNamespace(tags=tags, metrics={}))

    facts = Facts([
        run("gen", **{"rose.stage": "generate", "rose.unit.u1": "generate", "mlflow.parentRunId": "launch"}),
        run("seed", **{"rose.stage": "train", "rose.role": "seed", "rose.unit.u2": "train", "mlflow.parentRunId": "p"}),
    ])  # fmt: skip
    assert facts.done == {"u1": "gen"}


# --- the local executor's workers -----------------------------------------------------------------------------
def test_a_worker_keeps_models_for_tasks_of_one_kind_and_releases_them_for_another_or_past_its_bound(monkeypatch):
    """worker.serve: what a task put in the model pool stays for the next task of the same kind, is released
    before a task of another kind, and after a task that leaves the worker above its memory bound."""
    import multiprocessing
    import threading
    from types import SimpleNamespace

    from rose.pipeline import worker
    from rose.train import pool

    pool.pool().clear()
    seen = []

    def fake_run(payload, *, keep_models, facts):  # loads a "model" like a cell would; says what it found
        seen.append(len(pool.pool()))
        pool.pool().get(payload.units[0].stage, lambda: object())
        facts["unit_s"] = 0.0
        return [("digest", "run")]

    def task(kind):
        return SimpleNamespace(units=[SimpleNamespace(stage=kind, label=kind)])

    monkeypatch.setattr(worker, "run", fake_run)
    for bound, expected in ((1 << 40, [0, 1, 0]), (0, [0, 0, 0])):
        ours, theirs = multiprocessing.Pipe(duplex=True)
        thread = threading.Thread(target=worker.serve, args=(theirs, bound), daemon=True)
        thread.start()
        seen.clear()
        answers = []
        for kind in ("evaluate", "evaluate", "score"):
            ours.send(task(kind))
            answers.append(ours.recv())
        ours.send(None)
        thread.join(timeout=30)
        assert not thread.is_alive()
        assert seen == expected, bound  # kept across the two cells tasks, released before the score task
        assert all(a[0] == "ok" and a[2]["rss"] > 0 for a in answers)
        assert len(pool.pool()) == (1 if bound else 0)
        pool.pool().clear()


@pytest.mark.slow
def test_a_local_worker_runs_task_after_task_and_one_killed_mid_task_is_retried_in_a_fresh_worker(store, tiny):
    """LocalPool: two tasks in one worker process (imports paid once); a worker killed while it runs a task is
    replaced and the task runs again in the fresh one (taking its run over); past the memory bound a worker is
    ended after its task."""
    import threading

    from rose.pipeline import execute, plan, worker
    from rose.pipeline.resources import Resources
    from rose.pipeline.study import load_study
    from rose.tracking import search_runs

    path = study_yaml(store, tiny)
    path.write_text(path.read_text().replace("generator: fake-b,", 'generator: "fake-b@0.5s",'))
    units = [u for u in plan.build(load_study(path)).units if u.stage == "generate"]
    quick, slow = sorted(units, key=lambda u: "0.5s" in u.label)
    assert "0.5s" in slow.label and "0.5s" not in quick.label
    payload = lambda unit: worker.Payload("study", [unit], worker.environment())  # noqa: E731
    pool = execute.LocalPool(1)
    try:
        pool.submit(payload(quick), Resources(), []).result(timeout=300)
        first_pid = pool.history[-1][1]
        killed = threading.Event()

        def kill_when_it_writes() -> None:  # the slow unit's run exists: its worker is mid-task
            deadline = time.time() + 120
            while time.time() < deadline:
                running = search_runs("study", finished_only=False, stage="generate")
                if any(r.info.status == "RUNNING" for r in running):
                    time.sleep(0.5)
                    os.kill(first_pid, signal.SIGKILL)
                    killed.set()
                    return
                time.sleep(0.2)

        killer = threading.Thread(target=kill_when_it_writes, daemon=True)
        killer.start()
        pairs = pool.submit(payload(slow), Resources(max_retries=1), []).result(timeout=300)
        killer.join()
        assert killed.is_set()
        assert pool.started == 2 and pool.history[-1][1] != first_pid  # retried in a fresh worker
        again = pool.submit(payload(quick), Resources(), []).result(timeout=300)
        assert pool.started == 2 and pool.history[-1][1] == pool.history[-2][1]  # that worker reused
        assert pool.overhead()["generate"][1] == 2
    finally:
        pool.close()
    runs = search_runs("study", finished_only=False, stage="generate")
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}  # the retry took the run over
    assert pairs[0][1] in {r.info.run_id for r in runs} and again[0][1] in {r.info.run_id for r in runs}
    bounded = execute.LocalPool(1, max_worker_mb=1)  # every worker is above 1 MB: ended after each task
    try:
        for _ in range(2):
            bounded.submit(payload(quick), Resources(), []).result(timeout=300)
        assert bounded.started == 2 and bounded.history[0][1] != bounded.history[1][1]
        assert not bounded._idle and not bounded._live
    finally:
        bounded.close()
    early = execute.LocalPool(1, prestart=True)  # the worker starts (and imports) before any task is known
    try:
        assert early.started == 1 and len(early._idle) == 1
        waiting = early._idle[0].pid
        early.submit(payload(quick), Resources(), []).result(timeout=300)
        assert early.started == 1 and early.history[-1][1] == waiting  # the task ran in the prestarted worker
        assert early.overhead()["generate"][1] == 1  # whose start its first task counts
    finally:
        early.close()
