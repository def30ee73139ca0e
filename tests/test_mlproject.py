"""The MLflow project: entry points run with `mlflow run . -e NAME --env-manager local`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.fakes import tracking_db
from tests.tiny import TOPIC_EN, make_tiny_classifier

ROOT = Path(__file__).resolve().parents[1]


def test_mlproject_declares_every_stage_and_its_scripts_exist():
    project = yaml.safe_load((ROOT / "MLproject").read_text())
    assert set(project["entry_points"]) == {"main", "generate", "train", "evaluate", "tune", "score", "pipeline"}
    for name, entry in project["entry_points"].items():
        script = entry["command"].split()[1]
        assert (ROOT / script).exists(), (name, script)
    conda = yaml.safe_load((ROOT / "conda.yaml").read_text())
    assert any(str(d).startswith("python=3.11") for d in conda["dependencies"])


def _mlflow_run(tmp_path: Path, entry: str, params: dict[str, str], experiment: str | None = None):
    """``mlflow run`` of an entry point; with ``experiment``, MLflow Projects starts its run in that experiment
    (``--experiment-name``), else in the store's default one."""
    args = [sys.executable, "-m", "mlflow", "run", str(ROOT), "-e", entry, "--env-manager", "local"]
    args += ["--experiment-name", experiment] if experiment else []
    for key, value in params.items():
        args += ["-P", f"{key}={value}"]
    # MLflow exports the active experiment of this process (MLFLOW_EXPERIMENT_ID); the new store has none of it
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID")}
    env.update(MLFLOW_TRACKING_URI=tracking_db(tmp_path), PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
    return subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)


def _every_run_is_roses(uri: str) -> list:
    """Every run left in the store (any experiment) carries rose's tags: ``mlflow run`` leaves no run of its own."""
    import mlflow

    client = mlflow.MlflowClient(uri)
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert all("rose.stage" in r.data.tags and "rose.version" in r.data.tags for r in runs), [
        (r.info.run_name, r.data.tags.get("mlflow.project.entryPoint")) for r in runs if "rose.stage" not in r.data.tags
    ]
    return runs


def _launched(run) -> bool:
    """Whether ``run`` is the run MLflow Projects started (it holds the entry point's tag)."""
    return "mlflow.project.entryPoint" in run.data.tags


@pytest.mark.slow
def test_mlflow_run_stages_work_in_the_run_mlflow_started(tmp_path):
    import mlflow

    from rose.tracking import search_runs

    uri = tracking_db(tmp_path)
    gens = []
    for generator, experiment in (("fake-a", "mlproject"), ("fake-b", None)):  # None: mlflow run's own experiment
        done = _mlflow_run(tmp_path, "generate", {
            "task": "topic", "language": "en", "generator": generator, "strategy": "target_demos",
            "backend": "fake", "per_label": "3", "source": str(TOPIC_EN), "experiment": "mlproject",
            "cache_dir": str(tmp_path / "c"),
        }, experiment)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        mlflow.set_tracking_uri(uri)
        (gen,) = search_runs("mlproject", stage="generate", candidate=f"{generator}__target_demos")
        assert gen.data.tags["mlflow.note.content"].startswith(f"{generator} (fake backend), strategy target_demos")
        assert _launched(gen) == (experiment is not None)  # in the study's experiment, the run is mlflow run's
        gens.append(gen)
    assert gens[0].data.metrics["kept_total"] == 21
    tiny = make_tiny_classifier(tmp_path / "tiny")
    for gen in gens:
        done = _mlflow_run(tmp_path, "train", {
            "task": "topic", "language": "en", "data": gen.info.run_id, "classifier": str(tiny), "seeds": "1",
            "eval": f"human:{TOPIC_EN}", "per_label": "3", "max_epochs": "1", "experiment": "mlproject",
        }, "mlproject")  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
    seeds = search_runs("mlproject", stage="train", role="seed")
    assert {s.data.tags["rose.data_run_id"] for s in seeds} == {g.info.run_id for g in gens}
    assert all("eval/human/macro_f1" in s.data.metrics for s in seeds)
    parents = search_runs("mlproject", stage="train", role="setting")
    assert len(parents) == 2 and all(_launched(p) for p in parents)
    assert all(p.data.tags["mlflow.note.content"].startswith("Trained ") for p in parents)
    parent = next(p for p in parents if p.data.tags["rose.data_run_id"] == gens[0].info.run_id)
    done = _mlflow_run(tmp_path, "evaluate", {"train_run": parent.info.run_id, "data": gens[1].info.run_id,
                                              "experiment": "mlproject"}, "mlproject")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (cell,) = search_runs("mlproject", stage="evaluate")
    assert cell.data.tags["rose.train_run_id"] == parent.info.run_id and _launched(cell)
    assert cell.data.tags["rose.dataset"] == gens[1].info.run_id and "seed/1/macro_f1" in cell.data.metrics
    done = _mlflow_run(tmp_path, "score", {"task": "topic", "language": "en", "experiment": "mlproject"}, "mlproject")
    assert done.returncode == 0, done.stderr[-3000:]
    (score,) = search_runs("mlproject", stage="score")
    assert _launched(score) and "can" in score.data.tags["mlflow.note.content"]
    assert score.data.tags["mlflow.runName"] == "score · topic/en"
    runs = _every_run_is_roses(uri)
    stages = [r.data.tags["rose.stage"] for r in runs]  # score filled the cells it lacked (on human data, too)
    assert {s: stages.count(s) for s in set(stages) - {"evaluate"}} == {
        "generate": 2,
        "train": 4,
        "score": 1,
        "launch": 1,
    }
    (launch,) = [r for r in runs if r.data.tags["rose.stage"] == "launch"]  # fake-b's, in mlflow run's experiment
    assert (
        launch.info.experiment_id != gens[0].info.experiment_id and launch.data.tags["rose.entry_point"] == "generate"
    )
    assert "rose's runs went to the experiment 'mlproject'" in launch.data.tags["mlflow.note.content"]


@pytest.mark.slow
def test_mlflow_run_main_makes_its_run_the_parent_of_the_study(tmp_path):
    from tests.test_pipeline import study_yaml

    tiny = make_tiny_classifier(tmp_path / "tiny")
    study = study_yaml(tmp_path, tiny, experiment="mlproject-study", seeds=(1,), epochs=1)
    done = _mlflow_run(tmp_path, "main", {"config": str(study)}, "mlproject-study")
    assert done.returncode == 0, done.stderr[-3000:]
    runs = _every_run_is_roses(tracking_db(tmp_path))
    (pipeline,) = [r for r in runs if r.data.tags["rose.stage"] == "pipeline"]
    assert _launched(pipeline) and pipeline.data.tags["mlflow.runName"] == "pipeline-study"
    top = [r for r in runs if r.data.tags.get("rose.role") != "seed" and r is not pipeline]
    assert top and all(r.data.tags.get("mlflow.parentRunId") == pipeline.info.run_id for r in top)


@pytest.mark.slow
def test_mlflow_run_score_on_empty_experiment_says_what_is_missing(tmp_path):
    done = _mlflow_run(tmp_path, "score", {"task": "topic", "language": "en", "experiment": "nothing-here"})
    assert done.returncode != 0
    assert "rose score: error:" in done.stderr and "rose generate" in done.stderr
    (launch,) = _every_run_is_roses(tracking_db(tmp_path))  # the run mlflow run started says why it is empty
    assert launch.info.status == "FAILED" and launch.data.tags["rose.stage"] == "launch"
    assert launch.data.tags["rose.task"] == "topic" and "rose stopped before" in launch.data.tags["mlflow.note.content"]
