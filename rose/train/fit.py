"""Fitting one seed: load and check the data once (:func:`prepare`), then train per seed (:func:`fit_seed`).

Knows nothing of MLflow: per-epoch metrics go to the ``sinks`` a caller passes (``train`` logs them to MLflow,
``tune`` reports them to Optuna).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import warnings
from pathlib import Path

import torch

from rose.devices import bf16_supported
from rose.errors import RoseError
from rose.generated_data import HUMAN_PREFIX, human_source, is_run_id, load_ref
from rose.human_data import LabelledData, cap_per_label, columns, stratified_split
from rose.languages import get_language
from rose.tasks import get_task
from rose.train import evaluate, pool
from rose.train.config import PROTOCOLS, TrainConfig
from rose.train.datamodule import ClassificationDataModule, Encoded, encode
from rose.train.delta import BaseModelError, base_digest
from rose.train.module import BestWeights, ClassifierModule, EpochHistory
from rose.train.normalize import CONFIG_FLAG, normalize_texts

log = logging.getLogger(__name__)

# Lightning's start-up notices (GPU available, tips) are noise in a loop over seeds
for _name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
    logging.getLogger(_name).setLevel(logging.WARNING)

CAP_SEED = 0  # the per-label cap is one fixed sample, so every seed of a setting sees the same pool


@dataclasses.dataclass
class Setting:
    """Everything seeds share: data (tokenized once), tokenizer, base model reference, provenance tags."""

    config: TrainConfig
    label_names: list[str]
    train_data: LabelledData
    eval_sets: list[LabelledData]
    encoded: Encoded
    tokenizer: object
    base_path: Path
    base_digest: str
    reference: dict  # the base's state dict (what a delta artifact is computed against)
    head_keys: set[str]  # parameters the base does not have (always stored)
    tags: dict[str, str]
    data_source: str | None
    bf16: bool


@dataclasses.dataclass
class FitResult:
    model: torch.nn.Module
    dev_metrics: dict[str, float]
    history: list[dict[str, float]]
    best_epoch: int
    epochs: int
    train_s: float
    peak_rss_mb: float
    cut: int = 0  # layers of a frozen trunk whose output the cache holds (0: none): see :func:`predict`


def resolve_classifier(name: str) -> Path | str:
    """A local folder for the classifier (:func:`rose.assets.resolve_model`, rose's one resolver), or a hub id
    left for transformers; a missing path, or a folder that is no transformers model, is an error."""
    from rose.assets import resolve_model

    resolved = resolve_model(name)
    path = Path(resolved)
    if not path.is_dir():
        return resolved  # a hub id
    if not (path / "config.json").exists():
        raise RoseError(f"classifier folder {name} has no config.json: pass a transformers model folder")
    return path


def use_bf16(setting: str) -> bool:
    """bf16 autocast: on when asked, or (``auto``) where the hardware has it natively (:mod:`rose.devices`)."""
    if setting != "auto":
        return setting == "true"
    return bf16_supported("auto")


def load_training_data(config: TrainConfig) -> LabelledData:
    """The training set capped per label; an empty or single-label set is an error."""
    data = load_ref(config.data, config.task, config.language, split="train", **columns(config))
    if not len(data):
        raise RoseError(f"{config.data}: the training data is empty (after dropping empty texts)")
    labels = sorted(set(data.labels))
    if len(labels) < 2:
        raise RoseError(f"{config.data}: the training data has a single label ({labels[0]}): "
                        "a classifier needs at least two")  # fmt: skip
    missing = [lab for lab in get_task(config.task).labels if lab not in labels]
    if missing:
        log.warning("%s has no examples of %s: the classifier still predicts every label of the task",
                    data.name, ", ".join(missing))  # fmt: skip
    capped = cap_per_label(data, config.per_label, CAP_SEED)
    capped.name = data.name
    return capped


def provenance(config: TrainConfig, data: LabelledData) -> tuple[dict[str, str], str | None]:
    """Run-schema tags naming the training data, and an MLflow dataset source for it."""
    ref = config.data
    if ref.startswith(HUMAN_PREFIX):
        source = Path(human_source(ref)).expanduser()
        try:
            split = get_task(config.task).human_path(source, get_language(config.language).code, "train")
        except RoseError:  # the hub, or a task that names no folder
            return {"train_data": "human"}, None
        return {"train_data": "human"}, str(split.resolve()) if split.exists() else None
    tags = {"train_data": data.name, "candidate": data.name}
    if is_run_id(ref):
        import mlflow

        run = mlflow.MlflowClient().get_run(ref.removeprefix("runs:/"))
        tags.update(data_run_id=run.info.run_id, generator=run.data.tags.get("rose.generator"),
                    strategy=run.data.tags.get("rose.strategy"))  # fmt: skip
        return {k: v for k, v in tags.items() if v}, f"{run.info.artifact_uri}/dataset/data.jsonl"
    path = Path(ref).expanduser()
    path = path / "data.jsonl" if path.is_dir() else path
    if path.suffix == ".jsonl":
        import json

        with path.open(encoding="utf-8") as fh:
            first = json.loads(fh.readline() or "{}")
        tags.update({k: first[k] for k in ("generator", "strategy") if first.get(k)})
    return tags, str(path.resolve())


def prepare(config: TrainConfig) -> Setting:
    """Check the config, load the training and evaluation data, the tokenizer and the base model's weights."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if config.protocol not in PROTOCOLS:
        raise RoseError(f"unknown protocol {config.protocol!r}: use {' or '.join(PROTOCOLS)}")
    if not config.seeds:
        raise RoseError("no seeds: pass --seeds, e.g. 1,2,3")
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    task = get_task(config.task)
    label_names = list(task.labels)
    base = resolve_classifier(config.classifier)
    data = load_training_data(config)
    eval_sets = _load_eval_sets(config)

    def base_weights() -> tuple[dict, frozenset, Path]:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            base, num_labels=len(label_names), output_loading_info=True
        )
        base_path = Path(base) if Path(base).is_dir() else Path(model.name_or_path)
        # the model is dropped here, so its tensors become the reference as they are (no copy)
        return ({k: v.detach() for k, v in model.state_dict().items()}, frozenset(info["missing_keys"]),
                base_path)  # fmt: skip

    # A long-lived worker trains setting after setting on one base: its tokenizer and its weights (the reference a
    # delta is computed against; never changed) are read once (rose.train.pool), each seed's model still loaded
    # from the base's files with its own head (build_model).
    models = pool.pool()
    try:  # keyed by the folder's weights too: a model rewritten in place is read again
        identity = (str(base), base_digest(base) if Path(base).is_dir() else "")
        tokenizer = models.get(("tokenizer", *identity), lambda: AutoTokenizer.from_pretrained(base))
        reference, missing, base_path = models.get(("reference", *identity, len(label_names)), base_weights)
    except (OSError, BaseModelError) as exc:
        raise RoseError(f"cannot load classifier {config.classifier}: {str(exc).splitlines()[0]}") from None
    encoded = encode_training_data(tokenizer, data, label_names, config)
    tags, source = provenance(config, data)
    tags.update(classifier=config.classifier, protocol=config.protocol)
    digest = identity[1] or (base_digest(base_path) if base_path.is_dir() else "unknown")
    return Setting(config, label_names, data, eval_sets, encoded, tokenizer, base_path, digest, reference,
                   set(missing), tags, source, protocol_bf16(config))  # fmt: skip


def is_reference(config: TrainConfig) -> bool:
    return config.protocol == "reference"


def protocol_bf16(config: TrainConfig) -> bool:
    """bf16 autocast for ``config``: the reference protocol trains in fp32 unless bf16 is asked for."""
    return config.bf16 == "true" if is_reference(config) else use_bf16(config.bf16)


def encode_training_data(tokenizer, data: LabelledData, label_names: list[str], config: TrainConfig) -> Encoded:
    """Token ids of the training texts (normalised under the reference protocol) with their label indices."""
    index = {label: i for i, label in enumerate(label_names)}
    texts = normalize_texts(data.texts) if is_reference(config) else data.texts
    return encode(tokenizer, texts, [index[lab] for lab in data.labels], config.max_length)


def _load_eval_sets(config: TrainConfig) -> list[LabelledData]:
    sets, names = [], set()
    for ref in config.eval:
        data = load_ref(ref, config.task, config.language, split="test", **columns(config))
        if not len(data):
            raise RoseError(f"evaluation set {ref} is empty")
        name, n = data.name, 2
        while data.name in names:
            data.name, n = f"{name}-{n}", n + 1
        names.add(data.name)
        sets.append(data)
    return sets


def split_index(data: LabelledData, dev_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices of a stratified (train, dev) split of ``data``, different for each seed."""
    numbered = LabelledData([str(i) for i in range(len(data))], data.labels, data.name)
    train, dev = stratified_split(numbered, dev_fraction, seed)
    return [int(t) for t in train.texts], [int(t) for t in dev.texts]


def build_model(setting: Setting, seed: int, config: TrainConfig) -> torch.nn.Module:
    """The base model with a fresh head initialised from ``seed`` (and the configured dropout)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    model_config = AutoConfig.from_pretrained(
        setting.base_path, num_labels=len(setting.label_names), id2label=dict(enumerate(setting.label_names)),
        label2id={lab: i for i, lab in enumerate(setting.label_names)})  # fmt: skip
    if config.dropout is not None:
        for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout", "dropout"):
            if hasattr(model_config, key):
                setattr(model_config, key, config.dropout)
    if is_reference(config):  # predictions then normalise their inputs too (rose.train.normalize)
        setattr(model_config, CONFIG_FLAG, True)
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(setting.base_path, config=model_config)
    model.train()
    if config.freeze_embeddings:
        from rose.train.module import freeze_word_embeddings

        log.debug("froze %d embedding parameters", freeze_word_embeddings(model))
    if config.train_top_layers:
        from rose.train.module import freeze_below_top_layers

        log.debug("froze %d parameters below the top %d layers", freeze_below_top_layers(model,
                  config.train_top_layers), config.train_top_layers)  # fmt: skip
    return model


class PeakMemory:
    """Peak resident memory (MB) of this process while the block runs, sampled every 20 ms."""

    def __enter__(self) -> PeakMemory:
        import psutil

        self._process, self.peak, self._stop = psutil.Process(), 0.0, threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        while True:
            self.peak = max(self.peak, self._process.memory_info().rss / 2**20)
            if self._stop.wait(0.02):
                return

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def fit_seed(setting: Setting, seed: int, sinks=(), config: TrainConfig | None = None) -> FitResult:
    """Train one seed (deterministic for a seed), restore its best epoch, and score the dev split."""
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping

    config = config or setting.config
    L.seed_everything(seed, workers=True, verbose=False)
    train_idx, dev_idx = split_index(setting.train_data, config.dev_fraction, seed)
    reference = is_reference(config)
    encoded = setting.encoded
    if reference != is_reference(setting.config):  # a protocol other than the setting's: texts read differently
        encoded = encode_training_data(setting.tokenizer, setting.train_data, setting.label_names, config)
    bf16 = setting.bf16 if config.protocol == setting.config.protocol else protocol_bf16(config)
    model = build_model(setting, seed, config)
    frozen, top, trunk_s, cached_cut = [], None, 0.0, 0
    if config.train_top_layers and not reference:
        from rose.train import trunk

        cut = trunk.cut_of(model, config.train_top_layers)
        frozen = trunk.frozen_modules(model, cut)
        if config.trunk_cache:  # the frozen layers' output, computed once per dataset (rose.train.trunk)
            store = trunk_store(setting)
            began = time.perf_counter()  # the trunk's pass (or its read from the cache) counts as training time
            states = trunk.states(model, encoded.input_ids, cut, base_digest=setting.base_digest,
                                  max_length=config.max_length, pad_id=setting.tokenizer.pad_token_id or 0,
                                  bf16=bf16, store=store, batch_size=config.eval_batch_size)  # fmt: skip
            trunk_s = time.perf_counter() - began
            encoded = dataclasses.replace(encoded, states=states)
            top, cached_cut = trunk.top_view(model, cut), cut
    train, dev = encoded.subset(train_idx), encoded.subset(dev_idx)
    datamodule = ClassificationDataModule(
        train, dev, pad_id=setting.tokenizer.pad_token_id or 0, batch_size=config.batch_size,
        eval_batch_size=config.eval_batch_size, group_by_length=config.group_by_length,
        pad_to_max_length=reference, max_length=config.max_length, seed=seed)  # fmt: skip
    clip = None if reference else (config.max_grad_norm or None)
    module = ClassifierModule(model, setting.label_names, learning_rate=config.learning_rate,
                              weight_decay=config.weight_decay, warmup_ratio=config.warmup_ratio,
                              reference=reference, frozen=frozen, top=top, max_grad_norm=clip)  # fmt: skip
    # the reference stops on the training loss once more than `patience` epochs did not improve it
    monitor, mode, patience = ("train/loss", "min", config.patience + 1) if reference else \
        ("val/macro_f1", "max", config.patience)  # fmt: skip
    # ties on the dev macro-F1 go to the lower dev loss; the reference keeps its first best training loss
    best, history = BestWeights(monitor, mode, "" if reference else "val/loss"), EpochHistory(*sinks)
    trainer = L.Trainer(
        max_epochs=config.max_epochs, accelerator="auto", devices=1, logger=False, enable_checkpointing=True,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        precision="bf16-mixed" if bf16 else "32-true",  # gradients clipped by the module (max_grad_norm)
        callbacks=[history, best, EarlyStopping(monitor, patience=patience, mode=mode)])  # fmt: skip
    start = time.perf_counter()
    with PeakMemory() as memory, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(LeafSpec|does not have many workers|eval mode).*")
        trainer.fit(module, datamodule=datamodule)
    train_s = time.perf_counter() - start + trunk_s
    model = module.model.cpu().eval()  # scored as cells score it (a logged model on the CPU): in fp32
    fitted = FitResult(model, {}, history.history, best.best_epoch, trainer.current_epoch, train_s, memory.peak,
                       cached_cut)  # fmt: skip
    probs = predict(setting, fitted, setting.train_data.texts, config, rows=dev_idx)
    fitted.dev_metrics = evaluate.classification_metrics(dev.labels, probs.argmax(axis=1), setting.label_names)
    return fitted


def predict(setting: Setting, fitted: FitResult, texts: list[str], config: TrainConfig | None = None,
            rows: list[int] | None = None):  # fmt: skip
    """Class probabilities of ``texts`` (of ``rows`` of them only, when given) by a trained seed, in fp32 as a cell
    scores its logged model: above a frozen trunk whose output is cached (``fitted.cut``), through the cache (the
    trunk's pass once per text set, shared by the seeds and with the cells: :func:`rose.train.trunk.probabilities`),
    else the whole model."""
    config = config or setting.config
    if not fitted.cut:
        chosen = texts if rows is None else [texts[i] for i in rows]
        return evaluate.predict_proba(fitted.model, setting.tokenizer, chosen, batch_size=config.eval_batch_size,
                                      max_length=config.max_length)  # fmt: skip
    from rose.train import trunk

    return trunk.probabilities(fitted.model, fitted.model, setting.tokenizer, texts, fitted.cut,
                               base_digest=setting.base_digest, max_length=config.max_length,
                               store=trunk_store(setting), batch_size=config.eval_batch_size, rows=rows)  # fmt: skip


def trunk_store(setting: Setting):
    """Where a setting's trunk outputs are cached: the shared cache (:func:`rose.train.trunk.cache`), or, for a base
    whose weights have no digest, a cache of this call only (its key could not tell two such bases apart)."""
    from rose.train import trunk

    return None if setting.base_digest != "unknown" else trunk.TrunkCache(None)
