"""What a user sees in the MLflow UI: the experiment kind, named classifiers with the metrics of their saved weights,
cells linked to model and dataset, run descriptions, champion and challenger, and the UI itself in Chromium."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rose.mlflow_ui import chromium, dump_dom, experiment_url, serve, visible_text
from tests.fakes import tracking_db
from tests.test_pipeline import study_yaml
from tests.tiny import make_tiny_classifier


def test_experiment_kind_is_set_and_a_users_kind_is_kept(tmp_path, monkeypatch):
    import mlflow

    from rose import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_db(tmp_path))
    monkeypatch.chdir(tmp_path)
    client = mlflow.MlflowClient(tracking_db(tmp_path))
    created = tracking.setup("new")
    assert client.get_experiment(created).tags[tracking.KIND_TAG] == "custom_model_development"
    plain = client.create_experiment("made-elsewhere")
    tracking.setup("made-elsewhere")
    assert client.get_experiment(plain).tags[tracking.KIND_TAG] == "custom_model_development"
    own = client.create_experiment("users-kind", tags={tracking.KIND_TAG: "genai_development"})
    tracking.setup("users-kind")
    assert client.get_experiment(own).tags[tracking.KIND_TAG] == "genai_development"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A small study (fake generators, the tiny encoder, two seeds) run once into its own SQLite store."""
    import mlflow

    from rose.pipeline.run import run_pipeline

    kept = os.environ.get("ROSE_TEST_UI_STUDY")  # a folder this fixture filled before: iterate on the checks
    folder = Path(kept) if kept else tmp_path_factory.mktemp("ui-study")
    uri = tracking_db(folder)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.chdir(folder)
        mlflow.set_tracking_uri(uri)
        if not kept:
            run_pipeline(study_yaml(folder, make_tiny_classifier(folder / "tiny"), experiment="ui-study"))
        yield folder, uri


def _runs(**tags):
    from rose.tracking import search_runs

    return search_runs("ui-study", **tags)


@pytest.mark.slow
def test_each_seed_model_is_named_and_linked_to_the_metrics_of_its_saved_weights(study):
    import mlflow

    _, uri = study
    client = mlflow.MlflowClient(uri)
    seeds = _runs(stage="train", role="seed")
    assert len(seeds) == 6  # two candidates and the human baseline, two seeds each
    names = set()
    for run in seeds:
        (output,) = run.outputs.model_outputs
        model = client.get_logged_model(output.model_id)
        names.add(model.name)
        assert model.name == f"{run.data.tags['rose.train_data']}-seed{run.data.tags['rose.seed']}"
        assert model.params == run.data.params and model.tags["rose.seed"] == run.data.tags["rose.seed"]
        best = int(run.data.metrics["epochs/best"])
        linked = {m.key: m for m in model.metrics if m.run_id == run.info.run_id}  # cells link theirs, too
        assert {"dev/macro_f1", "dev/accuracy", "val/macro_f1", "train/loss"} <= set(linked)
        for key, metric in linked.items():
            history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}
            if key.startswith(("val/", "train/")):  # per epoch: the epoch whose weights were restored and saved
                assert metric.step == best and metric.value == history[best], key
            else:  # the final metrics, of those restored weights
                assert metric.value == run.data.metrics[key], key
        assert len(linked) == len([m for m in model.metrics if m.run_id == run.info.run_id])  # never two epochs
    assert len(names) == 6


@pytest.mark.slow
def test_each_cell_links_every_seed_models_scores_to_the_model_and_the_dataset(study):
    import mlflow

    _, uri = study
    client = mlflow.MlflowClient(uri)
    generated = {}
    for gen in _runs(stage="generate"):
        (inp,) = gen.inputs.dataset_inputs
        generated[gen.info.run_id] = (inp.dataset.name, inp.dataset.digest)
    cells = [client.get_run(r.info.run_id) for r in _runs(stage="evaluate")]  # a search leaves out model inputs
    assert len(cells) == 5
    for cell in cells:
        evaluation = [i for i in cell.inputs.dataset_inputs
                      if {(t.key, t.value) for t in i.tags} == {("mlflow.data.context", "evaluation")}]  # fmt: skip
        (dataset,) = [i.dataset for i in evaluation]
        if cell.data.tags["rose.eval_set"] == "human":
            assert dataset.name == "human-test"
        else:
            assert (dataset.name, dataset.digest) == generated[cell.data.tags["rose.dataset"]]
        seeds = {int(r.data.tags["rose.seed"]): r for r in _runs(stage="train", role="seed")
                 if r.data.tags.get("mlflow.parentRunId") == cell.data.tags["rose.train_run_id"]}  # fmt: skip
        assert {m.model_id for m in cell.inputs.model_inputs} == {r.outputs.model_outputs[0].model_id
                                                                  for r in seeds.values()}  # fmt: skip
        for seed, run in seeds.items():
            model = client.get_logged_model(run.outputs.model_outputs[0].model_id)
            on_it = {
                m.key: m for m in model.metrics if m.dataset_digest == dataset.digest and m.run_id == cell.info.run_id
            }
            assert on_it["macro_f1"].value == cell.data.metrics[f"seed/{seed}/macro_f1"]
            assert on_it["accuracy"].value == cell.data.metrics[f"seed/{seed}/accuracy"]
            assert on_it["macro_f1"].dataset_name == dataset.name


@pytest.mark.slow
def test_runs_and_the_champion_say_what_they_are_and_the_runner_up_is_challenger(study):
    import mlflow

    _, uri = study
    client = mlflow.MlflowClient(uri)
    note = "mlflow.note.content"
    (score,) = _runs(stage="score")
    text = score.data.tags[note]
    assert "RoSE leaderboard: task topic" in text and "fake-a__zero_shot" in text and "fake-b__target_demos" in text
    assert "cannot be told apart" in text or "is not seed noise" in text
    assert text.count("RoSE") >= 2 and "Human-test macro-F1" in text  # both sentences
    for gen in _runs(stage="generate"):
        assert f"{gen.data.tags['rose.generator']} (fake backend), strategy" in gen.data.tags[note]
        assert "kept 42" in gen.data.tags[note] and "Shortfall: none." in gen.data.tags[note]
    for parent in _runs(stage="train", role="setting"):
        assert parent.data.tags[note].startswith("Trained ") and "Seeds 1, 2" in parent.data.tags[note]
        assert "dev macro-F1" in parent.data.tags[note] or "eval/human macro-F1" in parent.data.tags[note]
    champion = client.get_model_version_by_alias("rose-topic-" + score.data.tags["rose.language"], "champion")
    challenger = client.get_model_version_by_alias(champion.name, "challenger")
    assert champion.tags["rose.candidate"] == score.data.tags["rose.champion"]
    assert challenger.tags["rose.candidate"] != champion.tags["rose.candidate"]
    assert f"Chosen by RoSE for topic/{score.data.tags['rose.language']}: {champion.tags['rose.candidate']}, RoSE " in (
        champion.description
    )
    assert "human-test macro-F1" in champion.description
    assert f"Runner-up (alias challenger): {challenger.tags['rose.candidate']}" in champion.description


@pytest.mark.slow
@pytest.mark.skipif(chromium() is None, reason="headless Chromium is not installed (apt-get install chromium)")
def test_the_ui_opens_on_the_training_runs_and_shows_the_classifiers_by_name(study):
    import mlflow

    from rose.pipeline.run import where_to_look

    folder, uri = study
    exp = mlflow.MlflowClient(uri).get_experiment_by_name("ui-study")
    assert experiment_url("http://127.0.0.1:5000", exp.experiment_id) in where_to_look("ui-study")  # what rose prints
    with serve(uri) as base:
        runs = visible_text(dump_dom(experiment_url(base, exp.experiment_id)))
        models = visible_text(dump_dom(experiment_url(base, exp.experiment_id, "models")))
    assert runs.startswith("Runs - Experiment") and "Token Usage" not in runs  # the runs, not the GenAI overview
    for name in ("generate · fake-a__zero_shot", "train · fake-b__target_demos", "score · topic/"):
        assert name in runs, name
    for name in ("fake-a__zero_shot-seed1", "fake-b__target_demos-seed2", "human-seed1"):
        assert name in models, name
    assert "human-test" in models  # the classifiers' scores, by dataset
