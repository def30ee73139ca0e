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


def _mlflow_run(tmp_path: Path, entry: str, params: dict[str, str]) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "mlflow", "run", str(ROOT), "-e", entry, "--env-manager", "local"]
    for key, value in params.items():
        args += ["-P", f"{key}={value}"]
    # MLflow exports the active experiment of this process (MLFLOW_EXPERIMENT_ID); the new store has none of it
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID")}
    env.update(MLFLOW_TRACKING_URI=tracking_db(tmp_path), PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
    return subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_mlflow_run_generate_then_train(tmp_path):
    import mlflow

    from rose.tracking import search_runs

    done = _mlflow_run(tmp_path, "generate", {
        "task": "topic", "language": "en", "generator": "fake-lm", "strategy": "target_demos", "backend": "fake",
        "per_label": "3", "source": str(TOPIC_EN), "experiment": "mlproject", "cache_dir": str(tmp_path / "c"),
    })  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    mlflow.set_tracking_uri(tracking_db(tmp_path))
    (gen,) = search_runs("mlproject", stage="generate")
    assert gen.data.tags["rose.candidate"] == "fake-lm__target_demos" and gen.data.metrics["kept_total"] == 21
    tiny = make_tiny_classifier(tmp_path / "tiny")
    done = _mlflow_run(tmp_path, "train", {
        "task": "topic", "language": "en", "data": gen.info.run_id, "classifier": str(tiny), "seeds": "1",
        "eval": f"human:{TOPIC_EN}", "per_label": "3", "max_epochs": "1", "experiment": "mlproject",
    })  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (seed,) = search_runs("mlproject", stage="train", role="seed")
    assert seed.data.tags["rose.data_run_id"] == gen.info.run_id and "eval/human/macro_f1" in seed.data.metrics
    (parent,) = search_runs("mlproject", stage="train", role="setting")
    done = _mlflow_run(tmp_path, "evaluate", {"train_run": parent.info.run_id, "data": gen.info.run_id,
                                              "experiment": "mlproject"})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (cell,) = search_runs("mlproject", stage="evaluate")
    assert (
        cell.data.tags["rose.train_run_id"] == parent.info.run_id and cell.data.tags["rose.dataset"] == gen.info.run_id
    )
    assert "seed/1/macro_f1" in cell.data.metrics


@pytest.mark.slow
def test_mlflow_run_score_on_empty_experiment_says_what_is_missing(tmp_path):
    done = _mlflow_run(tmp_path, "score", {"task": "topic", "language": "en", "experiment": "nothing-here"})
    assert done.returncode != 0
    assert "rose score: error:" in done.stderr and "rose generate" in done.stderr
