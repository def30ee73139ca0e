"""``tune(config) -> TuneResult``: an Optuna search over training hyperparameters.

The objective is dev macro-F1 on the training data's own stratified dev split (never a human test set). Trials
are pruned from per-epoch dev macro-F1 (median pruner) and each is a nested MLflow run under one tune run
(``rose.stage=tune``); optuna-integration's MLflowCallback is deprecated, so trials are logged here. The study is
stored in SQLite (``.rose/optuna.db`` in the project directory) or any database URL, so several machines can add
trials to one study. The best parameters are logged on the tune run and printed as ``rose train`` flags.

Search space: learning rate (5e-6 to 1e-4, log), batch size (8, 16, 32), warm-up ratio (0 to 0.2), weight decay
(0 to 0.1), dropout (0 to 0.3), patience (2 to 10).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import mlflow
import optuna

from rose import tracking
from rose.config import flag, validate
from rose.locations import project_dir
from rose.naming import short_hash, slug
from rose.tasks import get_task
from rose.train.config import TrainConfig, TuneConfig
from rose.train.evaluate import prefixed
from rose.train.fit import fit_seed, prepare

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TuneResult:
    study_name: str
    storage: str
    best_params: dict
    best_value: float | None
    parent_run_id: str
    n_trials: int  # all trials of the study, including other processes' and earlier runs'

    def train_flags(self) -> str:
        """The best parameters as ``rose train`` flags."""
        return " ".join(f"{flag(k)} {v}" for k, v in self.best_params.items())


def suggest(trial: optuna.Trial) -> dict:
    """One point of the search space."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 5e-6, 1e-4, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [8, 16, 32]),
        "warmup_ratio": trial.suggest_float("warmup_ratio", 0.0, 0.2),
        "weight_decay": trial.suggest_float("weight_decay", 0.0, 0.1),
        "dropout": trial.suggest_float("dropout", 0.0, 0.3),
        "patience": trial.suggest_int("patience", 2, 10),
    }


def default_storage() -> str:
    folder = project_dir() / ".rose"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'optuna.db'}"


def _train_config(config: TuneConfig) -> TrainConfig:
    shared = {f.name for f in dataclasses.fields(TrainConfig)} & {f.name for f in dataclasses.fields(TuneConfig)}
    return TrainConfig(**{k: getattr(config, k) for k in shared}, seeds=[config.seed], log_models=False)


def tune(config: TuneConfig) -> TuneResult:
    """Run ``config.n_trials`` trials of the study (created or resumed) and return the best so far."""
    validate(config)
    tracking.connect()
    base = _train_config(config)
    setting = prepare(base)
    storage = config.storage or default_storage()
    name = config.study_name or (
        f"{get_task(config.task).name}-{config.language}-{slug(setting.train_data.name)}-"
        f"{slug(Path(config.classifier).name)}-{short_hash(config.data + config.classifier)}"
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=name, storage=storage, direction="maximize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=config.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
    )  # fmt: skip
    tracking.setup(config.experiment)
    tags = tracking.tags("tune", get_task(config.task), config.language, role="study", study=name, **setting.tags)
    with tracking.run(
        tracking.run_name("tune", name), tags, params={**vars(config), "storage": storage, "study_name": name}
    ) as run:
        study.optimize(lambda trial: _objective(trial, setting, base, name), n_trials=config.n_trials,
                       timeout=config.timeout, gc_after_trial=True)  # fmt: skip
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        best_params, best_value = (study.best_params, study.best_value) if done else ({}, None)
        result = TuneResult(name, storage, best_params, best_value, run.info.run_id, len(study.trials))
        if best_params:
            tracking.log_params({f"best.{k}": v for k, v in best_params.items()})
            mlflow.log_metric("best/dev_macro_f1", best_value)
            mlflow.set_tag("rose.best_flags", result.train_flags())
        pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
        mlflow.log_metrics({"trials/total": len(study.trials), "trials/pruned": pruned})
    return result


def _objective(trial: optuna.Trial, setting, base: TrainConfig, study: str) -> float:
    params = suggest(trial)
    config = dataclasses.replace(base, **params)
    tags = tracking.tags("tune", get_task(base.task), base.language, role="trial", study=study, trial=trial.number,
                         **setting.tags)  # fmt: skip
    pruned_at: list[int] = []

    def report(metrics: dict, epoch: int, trainer) -> None:
        mlflow.log_metrics(metrics, step=epoch)
        if "val/macro_f1" in metrics:
            trial.report(metrics["val/macro_f1"], epoch)
            if trial.should_prune():
                pruned_at.append(epoch)
                trainer.should_stop = True

    with tracking.run(f"trial {trial.number}", tags, nested=True, params={**params, "trial": trial.number}):
        fitted = fit_seed(setting, base.seeds[0], sinks=[report], config=config)
        mlflow.log_metrics({**prefixed("dev", fitted.dev_metrics), "time/train_s": fitted.train_s})
        if pruned_at:
            mlflow.set_tag("rose.pruned", f"epoch {pruned_at[0]}")
    if pruned_at:
        raise optuna.TrialPruned(f"pruned at epoch {pruned_at[0]}")
    return fitted.dev_metrics["macro_f1"]
