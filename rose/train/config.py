"""Training and tuning arguments: one documented dataclass each, one field per flag and MLproject parameter.

Defaults follow the study (learning rate 1e-5, batch 16, up to 50 epochs, patience 5, max length 128, up to
100 examples per label, 10% held out, seeds 1 to 10).

Two protocols:
- ``default``: early stopping on the macro-F1 of a stratified dev split held out from the training data, and the
  weights of the best dev epoch are restored (kept in memory, never written per epoch); batches padded per batch.
- ``reference``: the reference code's training, exactly: texts lower-cased and stripped of ASCII punctuation
  (its ``--normalized``, also at prediction time), batches padded to ``max_length`` in a plain shuffled order,
  ``torch.optim.AdamW(model.parameters(), lr)`` with torch's defaults (weight decay 0.01 on every parameter) at a
  constant learning rate (no warm-up, no decay), no gradient clipping, fp32, and early stopping (and the restored
  epoch) on the *training* loss, which was a mistake, stopping when more than ``patience`` epochs in a row did not
  improve it (its ``no_improvement > patience``). The same 10% is held out but only reported. ``warmup_ratio``,
  ``weight_decay``, ``max_grad_norm`` and ``group_by_length`` do not apply; ``bf16`` only when set to ``true``.
  The reference watched the summed loss of a second pass over the training data after each epoch; here the
  mean loss of the epoch's own steps is watched (the same data, without the extra pass).

Reference: Anikina et al. (EMNLP 2025), section 2 of ../shared/docs/method.md; tanikina/multilingual-generation
``src/train_roberta.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from rose.config import field, known_encoding
from rose.languages import known_language
from rose.tasks import known_task

PROTOCOLS = ("default", "reference")


@dataclass
class TrainConfig:
    """Fine-tuning a classifier over seeds on one training set, cross-evaluated on any number of sets."""

    task: str = field(help="task: topic, intent, intent_all, sentiment or a task file (.yaml)", check=known_task)
    language: str = field(help="ISO 639-1 or 639-3 code of the language, e.g. cy", check=known_language)
    data: str = field(help="training data: a generate run id, a dataset file or folder, or human:<data folder>")
    eval: list[str] = field([], help="evaluation sets, comma-separated: human:<data folder> (its test split), "
                                     "generate run ids or dataset files")  # fmt: skip
    text_column: str = field("", help="text column of dataset files in --data/--eval (default: text)")
    label_column: str = field("", help="label column of dataset files in --data/--eval (default: label)")
    label_map: str = field("", help="map label values of dataset files to the task's labels: "
                                    "0=science/technology,1=travel,... or a .json/.csv/.txt file")  # fmt: skip
    classifier: str = field("multilingual-e5-small", help="encoder: a short name, a hub id or a local folder")
    seeds: list[int] = field(list(range(1, 11)), help="seeds, one nested MLflow run each (e.g. 1,2,3 or 1-10)",
                             min=0, distinct=True, nonempty=True)  # fmt: skip
    per_label: int = field(100, help="at most this many training examples per label (human data: the baseline cap)",
                           min=1)  # fmt: skip
    max_epochs: int = field(50, help="at most this many epochs", min=1)
    patience: int = field(5, help="epochs without improvement before early stopping", min=0)
    learning_rate: float = field(1e-5, help="AdamW learning rate", gt=0)
    batch_size: int = field(16, help="training batch size", min=1)
    max_length: int = field(128, help="truncate texts to this many tokens", min=2)
    warmup_ratio: float = field(0.0, help="share of training steps with a linear learning-rate warm-up", min=0, max=1)
    weight_decay: float = field(0.0, help="AdamW weight decay", min=0)
    max_grad_norm: float = field(1.0, help="clip gradients to this norm (0: no clipping; 1.0 as transformers' Trainer)",
                                 min=0)  # fmt: skip
    dropout: float | None = field(None, help="hidden and attention dropout (default: the model's own)", min=0, lt=1)
    freeze_embeddings: bool = field(
        False, help="freeze the word embeddings (most of a multilingual encoder's CPU cost)"
    )
    train_top_layers: int = field(
        0, help="train only the top N encoder layers and the head, freezing the embeddings and the layers below "
                "(0: every layer); backward passes then stop N layers from the top"
    )  # fmt: skip
    trunk_cache: bool = field(
        True, help="with train_top_layers: compute the frozen layers' output once per dataset and share it across "
                   "epochs, seeds and cells (the frozen layers run without dropout either way)"
    )  # fmt: skip
    group_by_length: bool = field(True, help="batch texts of similar length together (less padding)")
    dev_fraction: float = field(0.1, help="share of the training data held out (stratified) as the dev split",
                                gt=0, lt=1)  # fmt: skip
    protocol: str = field("default", help="default: stop on dev macro-F1; reference: the reference code's choices",
                          choices=list(PROTOCOLS))  # fmt: skip
    register: str = field("", help="register the best seed's model under this name in the model registry")
    experiment: str = field("rose", help="MLflow experiment")
    num_threads: int | None = field(None, help="torch CPU threads (default: torch's choice)", min=1)
    bf16: str = field("auto", help="bf16 autocast: auto (where the hardware has it), true or false",
                      choices=["auto", "true", "false"])  # fmt: skip
    eval_batch_size: int = field(64, help="batch size for scoring dev and evaluation sets", min=1)
    log_models: bool = field(True, help="log each seed's model as an MLflow pyfunc model")
    encoding: str = field("utf-8", help="text encoding of data files (e.g. latin-1, cp1252)", check=known_encoding)

    def setting(self) -> dict:
        """The values that define a setting (what the parent run's digest covers)."""
        from rose.tasks import get_task

        skip = {"eval", "seeds", "register", "experiment", "num_threads", "eval_batch_size", "log_models", "encoding",
                "trunk_cache"}  # fmt: skip
        out = {k: v for k, v in vars(self).items() if k not in skip}
        out["task"] = get_task(self.task).digest  # the task's content, never its name or path alone
        if self.train_top_layers:  # since the trunk cache: frozen layers in eval mode (settings before it differ)
            out["frozen_layers"] = "eval"
        return out


@dataclass
class TuneConfig:
    """An Optuna search over training hyperparameters, scored by dev macro-F1 on the training data's own dev split.

    The human test set is never used. Each trial is a nested MLflow run under one tune run; trials are pruned
    from per-epoch dev macro-F1 (median pruner). The study is stored in SQLite (``.rose/optuna.db`` in the
    project directory) or any database URL, so several machines can work on one study.
    """

    task: str = field(help="task: topic, intent, intent_all, sentiment or a task file (.yaml)", check=known_task)
    language: str = field(help="ISO 639-1 or 639-3 code of the language, e.g. cy", check=known_language)
    data: str = field(help="training data: a generate run id, a dataset file or folder, or human:<data folder>")
    text_column: str = field("", help="text column of dataset files in --data (default: text)")
    label_column: str = field("", help="label column of dataset files in --data (default: label)")
    label_map: str = field("", help="map label values of dataset files to the task's labels: "
                                    "0=science/technology,1=travel,... or a .json/.csv/.txt file")  # fmt: skip
    classifier: str = field("multilingual-e5-small", help="encoder: a short name, a hub id or a local folder")
    n_trials: int = field(20, help="trials to run in this process", min=1)
    timeout: float | None = field(None, help="stop starting trials after this many seconds", gt=0)
    seed: int = field(1, help="training seed of every trial (and the sampler's seed)", min=0)
    per_label: int = field(100, help="at most this many training examples per label", min=1)
    max_epochs: int = field(50, help="at most this many epochs per trial", min=1)
    max_length: int = field(128, help="truncate texts to this many tokens", min=2)
    dev_fraction: float = field(0.1, help="share of the training data held out (stratified) as the dev split",
                                gt=0, lt=1)  # fmt: skip
    freeze_embeddings: bool = field(False, help="freeze the word embeddings")
    storage: str = field("", help="Optuna storage URL (default: sqlite:///<project>/.rose/optuna.db)")
    study_name: str = field("", help="Optuna study name (default: derived from task, language, data, classifier)")
    experiment: str = field("rose", help="MLflow experiment")
    num_threads: int | None = field(None, help="torch CPU threads (default: torch's choice)", min=1)
    encoding: str = field("utf-8", help="text encoding of data files (e.g. latin-1, cp1252)", check=known_encoding)


@dataclass
class EvaluateConfig:
    """Cross-evaluation cells: a trained setting's seed models scored on datasets (one ``evaluate`` run each)."""

    train_run: str = field(help="the train setting run (rose.role=setting) whose seed models are scored")
    data: list[str] = field(help="datasets, comma-separated: generate run ids and/or human:<data folder> (test split)")
    experiment: str = field("rose", help="MLflow experiment")
