"""rose tune: an Optuna study of two trials on a tiny encoder, each trial a nested MLflow run."""

from __future__ import annotations

from tests.tiny import TOPIC_EN, make_tiny_classifier


def test_two_trials_in_sqlite_with_nested_runs(tmp_path, monkeypatch):
    import mlflow
    import optuna

    from rose.train.config import TuneConfig
    from rose.train.tune import tune

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    tiny = make_tiny_classifier(tmp_path / "encoder")
    cfg = TuneConfig(task="topic", language="en", data=f"human:{TOPIC_EN}", classifier=str(tiny), n_trials=2,
                     per_label=4, max_epochs=2, num_threads=1)  # fmt: skip
    result = tune(cfg)
    assert result.storage == f"sqlite:///{tmp_path / '.rose' / 'optuna.db'}"
    study = optuna.load_study(study_name=result.study_name, storage=result.storage)
    assert len(study.trials) == 2 and result.n_trials == 2
    assert set(result.best_params) == {"learning_rate", "batch_size", "warmup_ratio", "weight_decay", "dropout",
                                       "patience"}  # fmt: skip
    assert "--learning-rate" in result.train_flags() and 0 <= result.best_value <= 1
    client = mlflow.MlflowClient()
    parent = client.get_run(result.parent_run_id)
    assert parent.data.tags["rose.stage"] == "tune" and "best.learning_rate" in parent.data.params
    trials = mlflow.search_runs(
        experiment_names=["rose"],
        output_format="list",
        filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}'",
    )
    assert len(trials) == 2 and all("dev/macro_f1" in t.data.metrics for t in trials)
    # a second process adds trials to the same study
    assert tune(TuneConfig(**{**vars(cfg), "n_trials": 1})).n_trials == 3
