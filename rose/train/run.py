"""``train(config) -> TrainResult``: fine-tune over seeds, cross-evaluate, log everything to MLflow.

One parent run per setting (``rose.role=setting``: training data, classifier, hyperparameters) and one nested run
per seed (``rose.role=seed``) with its parameters, per-epoch metrics (step = epoch), dev metrics, the metrics of
every evaluation set (``eval/<set>/...``), a confusion matrix (PNG and CSV) per evaluation set, the time and memory
it took, and its model (a delta pyfunc, see :mod:`rose.train.pyfunc`). The parent logs ``<metric>_mean`` and
``<metric>_std`` over seeds and, with ``register``, registers the best seed's (by dev macro-F1) self-contained model.

Reference: Anikina et al. (EMNLP 2025), section 2 of ../shared/docs/method.md.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import statistics
import tempfile
import uuid
import warnings
from pathlib import Path

import mlflow

from rose import tracking
from rose.config import to_params, validate
from rose.naming import metric_key, slug
from rose.tasks import get_task
from rose.train import delta, evaluate, pyfunc
from rose.train.config import TrainConfig
from rose.train.fit import FitResult, Setting, fit_seed, predict, prepare

log = logging.getLogger(__name__)

SUMMARY_PREFIXES = ("dev/", "eval/", "time/", "memory/", "model/", "epochs/")


@dataclasses.dataclass
class SeedResult:
    seed: int
    run_id: str
    metrics: dict[str, float]
    best_epoch: int
    epochs: int


@dataclasses.dataclass
class TrainResult:
    """What a training call produced: per-seed metrics, their mean and std, and the runs."""

    parent_run_id: str
    seeds: list[SeedResult]
    summary: dict[str, float]
    registered: str | None = None

    def mean(self, key: str) -> float:
        return self.summary[f"{key}_mean"]


def train(config: TrainConfig) -> TrainResult:
    """Train ``config.classifier`` on ``config.data`` once per seed and score it on every evaluation set.

    An identical finished setting is returned as it is; an identical setting that was stopped (a crash,
    ``kill -9``) is continued: its finished seeds are kept, its unfinished seed runs deleted and run again.
    """
    validate(config)
    tracking.connect()  # a generate run id as --data is read from the tracking store
    setting = prepare(config)  # every input is read here, before a run exists
    tracking.setup(config.experiment)
    digest = parent_digest(config)
    parent_tags = tracking.tags("train", get_task(config.task), config.language, role="setting", **setting.tags,
                                setting=setting_digest(config), digest=digest)  # fmt: skip
    name = tracking.run_name("train", setting.train_data.name)
    if done := tracking.find_finished(config.experiment, "train", digest):
        return _reuse_or_grow(done, setting, parent_tags, name)
    params = {k: v for k, v in to_params(config).items() if k not in ("experiment",)}
    claim = tracking.claim(config.experiment, "train", digest, parent_tags, name)  # waits for a live twin
    if claim.finished is not None:
        log.info("another process trained this setting (%s)", claim.finished.info.run_id)
        return _reuse_or_grow(claim.finished, setting, parent_tags, name)
    results: list[SeedResult] = []
    with tempfile.TemporaryDirectory(prefix="rose-train-") as tmp, \
            tracking.run(name, parent_tags, params=params, run_id=claim.run_id, lease=claim.lease) as parent:  # fmt: skip
        kept = _kept_seeds(parent.info.run_id) if claim.adopted else {}
        if not claim.adopted:
            _log_training_input(setting)
            mlflow.log_metrics(label_counts(setting))
        best_folder, best_score = None, float("-inf")
        for seed in config.seeds:
            folder = Path(tmp) / f"seed{seed}"
            if seed in kept:
                log.info("seed %d: finished before the stop (%s); kept", seed, kept[seed].run_id)
                result, model_folder = kept[seed], None
            else:
                result = _run_seed(setting, seed, name, folder)
                model_folder = folder / pyfunc.ARTIFACT
            results.append(result)
            if result.metrics["dev/macro_f1"] > best_score:
                best_folder = model_folder or _download_model(result.run_id, Path(tmp) / f"kept{seed}")
                best_score = result.metrics["dev/macro_f1"]
        summary = summarise([r.metrics for r in results])
        mlflow.log_metrics(summary)
        mlflow.set_tag("mlflow.note.content", description(setting, results, summary))
        registered = None
        if config.register and best_folder is not None and config.log_models:
            registered = _register(best_folder, Path(tmp) / "full", setting, config.register)
        return TrainResult(parent.info.run_id, results, summary, registered)


def parent_digest(config: TrainConfig) -> str:
    """The digest of a train parent: its setting and evaluation sets, not its seeds (a parent grows by seeds)."""
    return tracking.digest({**config.setting(), "eval": config.eval})


def _reuse_or_grow(parent, setting: Setting, parent_tags: dict[str, str], name: str) -> TrainResult:
    """A finished parent with this setting: reused as it is, or grown by the seeds it lacks (only those are
    trained, as nested runs of the same parent, whose summary then covers every finished seed)."""
    from rose.lease import Lease

    have = {r.seed for r in _reused(parent).seeds}
    missing = [s for s in setting.config.seeds if s not in have]
    if not missing:
        log.info("an identical finished training run exists (%s); not training again", parent.info.run_id)
        return _reused(parent)
    log.info("training run %s has seeds %s: training seed(s) %s only", parent.info.run_id,
             ",".join(map(str, sorted(have))), ",".join(map(str, missing)))  # fmt: skip
    lease = Lease(parent.info.run_id, uuid.uuid4().hex)
    lease.move(parent.info.run_id)  # RUNNING under this process's lease: a twin waits, then finds the seeds
    lease.start()
    with tempfile.TemporaryDirectory(prefix="rose-train-") as tmp, \
            tracking.run(name, parent_tags, run_id=parent.info.run_id, lease=lease):  # fmt: skip
        for seed in missing:
            _run_seed(setting, seed, name, Path(tmp) / f"seed{seed}")
        results = _reused(parent).seeds
        summary = summarise([r.metrics for r in results])
        mlflow.log_metrics(summary)
        return TrainResult(parent.info.run_id, results, summary)


def description(setting: Setting, results: list[SeedResult], summary: dict[str, float]) -> str:
    """A train parent's run description: its data, seeds and result."""
    config, data = setting.config, setting.train_data
    counts = ", ".join(f"{label} {n}" for label, n in sorted(data.counts().items()))
    source = config.data if config.data.startswith("human:") else f"generate run {config.data}"
    seeds = ", ".join(str(r.seed) for r in results)
    lines = [f"Trained {config.classifier} on {data.name} ({source}): {len(data)} examples ({counts}).",
             f"Seeds {seeds}: a nested run each, logging its classifier as the model "
             f"{pyfunc.model_name(data.name)}-seed<seed>."]  # fmt: skip
    result = [f"{key.removesuffix('/macro_f1')} macro-F1 {summary[key + '_mean']:.4f} ± {summary[key + '_std']:.4f}"
              for key in sorted(k.removesuffix("_mean") for k in summary if k.endswith("/macro_f1_mean"))]  # fmt: skip
    if result:
        lines.append("Result over seeds (mean ± std): " + "; ".join(result) + ".")
    return "\n\n".join(lines)


def setting_digest(config: TrainConfig) -> str:
    """The digest of the training settings without the data (``rose.setting``): classifiers trained with the
    same one are comparable, so their cells may share a RoSE matrix."""
    return tracking.digest({k: v for k, v in config.setting().items() if k != "data"})


def label_counts(setting: Setting) -> dict[str, float]:
    """``data/count/<label>`` (training examples per label of the task, after the per-label cap) and
    ``data/examples``."""
    counts = setting.train_data.counts()
    out = {metric_key("data/count", label=label): float(counts.get(label, 0)) for label in setting.label_names}
    return {**out, "data/examples": float(len(setting.train_data))}


def _seed_result(run) -> SeedResult:
    m = run.data.metrics
    return SeedResult(
        int(run.data.tags["rose.seed"]),
        run.info.run_id,
        dict(m),
        int(m.get("epochs/best", 0)),
        int(m.get("epochs/trained", 0)),
    )


def _kept_seeds(parent_run_id: str) -> dict[int, SeedResult]:
    """Finished seed runs of a stopped setting; its unfinished seed runs are deleted (they will run again)."""
    kept = {}
    for run in tracking.child_runs(parent_run_id):
        if run.info.status == "FINISHED" and "dev/macro_f1" in run.data.metrics:
            kept[int(run.data.tags["rose.seed"])] = _seed_result(run)
        else:
            mlflow.MlflowClient().delete_run(run.info.run_id)
    return kept


def _reused(parent) -> TrainResult:
    seeds = sorted((_seed_result(r) for r in tracking.child_runs(parent.info.run_id)
                    if r.info.status == "FINISHED"), key=lambda r: r.seed)  # fmt: skip
    summary = {k: v for k, v in parent.data.metrics.items() if k.endswith(("_mean", "_std"))}
    return TrainResult(parent.info.run_id, seeds, summary)


def _download_model(run_id: str, folder: Path) -> Path | None:
    """The classifier folder of a seed run's logged model (None when the seed logged no model)."""
    try:
        local = Path(mlflow.artifacts.download_artifacts(pyfunc.model_uri(run_id), dst_path=str(folder)))
    except Exception:  # noqa: BLE001 - log_models was off for that seed
        return None
    meta = next(local.rglob("meta.json"), None)
    return meta.parent if meta else None


def _run_seed(setting: Setting, seed: int, name: str, folder: Path) -> SeedResult:
    """Train, score and log one seed; its model is freed before this returns."""
    config = setting.config
    seed_tags = tracking.tags("train", get_task(config.task), config.language, role="seed", seed=seed, **setting.tags,
                              setting=setting_digest(config), digest=tracking.digest({**config.setting(), "seed": seed}))  # fmt: skip
    params = {**{k: v for k, v in to_params(config).items() if k not in ("seeds", "experiment")}, "seed": seed}
    with tracking.run(f"seed {seed}", seed_tags, nested=True, params=params) as run:
        _log_training_input(setting)
        fitted = fit_seed(
            setting, seed, sinks=[lambda metrics, epoch, trainer: mlflow.log_metrics(metrics, step=epoch)]
        )
        metrics = {**evaluate.prefixed("dev", fitted.dev_metrics), "time/train_s": fitted.train_s,
                   "memory/peak_rss_mb": fitted.peak_rss_mb, "epochs/trained": fitted.epochs,
                   "epochs/best": fitted.best_epoch}  # fmt: skip
        for data in setting.eval_sets:
            scores, matrix = _score(setting, fitted, data)
            metrics.update(evaluate.prefixed(f"eval/{slug(data.name)}", scores))
            _log_confusion(matrix, setting.label_names, slug(data.name), folder)
        model_id = None
        if config.log_models:
            delta.save_delta(folder / pyfunc.ARTIFACT, fitted.model,
                             reference=setting.reference, always=setting.head_keys, base_id=config.classifier,
                             base_path=setting.base_path, digest=setting.base_digest,
                             max_length=config.max_length)  # fmt: skip
            # named after what it is; MLflow links it the metrics of the epoch whose weights it holds (step =
            # epoch), and the final metrics below, which describe those restored weights
            info, _ = pyfunc.log_classifier(folder / pyfunc.ARTIFACT, setting.label_names,
                                            pyfunc.seed_model_name(setting.train_data.name, seed),
                                            tags=model_tags(seed_tags), step=fitted.best_epoch)  # fmt: skip
            model_id = info.model_id
            metrics["model/artifact_mb"] = pyfunc.folder_mb(folder / pyfunc.ARTIFACT)
        linked = {k: v for k, v in metrics.items() if k in MODEL_METRICS}
        mlflow.log_metrics(linked, model_id=model_id)
        _log_unlinked({k: v for k, v in metrics.items() if k not in linked})
        log.info(
            "seed %d: dev macro-F1 %.4f%s",
            seed,
            metrics["dev/macro_f1"],
            "".join(f", {k} {v:.4f}" for k, v in metrics.items() if k.endswith("/macro_f1") and "eval" in k),
        )
        result = SeedResult(seed, run.info.run_id, metrics, fitted.best_epoch, fitted.epochs)
    del fitted
    gc.collect()  # Lightning's trainer and module hold each other: without this each seed's model outlived its seed
    return result


# The final metrics linked to a seed's model (with the best epoch's per-epoch metrics, which MLflow links when the
# model is logged at that step): what describes the classifier. Per-label scores, times and sizes stay on the run.
MODEL_METRICS = ("dev/macro_f1", "dev/accuracy")


def _log_unlinked(metrics: dict[str, float]) -> None:
    """Log metrics on the active run without linking them to its model (MLflow's fluent API links every metric
    logged at the model's step)."""
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
    for i in range(0, len(items), 1000):
        mlflow.MlflowClient().log_batch(mlflow.active_run().info.run_id, metrics=items[i : i + 1000])


def model_tags(run_tags: dict[str, str]) -> dict[str, str]:
    """The tags a seed's LoggedModel carries: the run's rose tags that say what the classifier is."""
    keep = ("rose.task", "rose.language", "rose.train_data", "rose.candidate", "rose.seed", "rose.classifier",
            "rose.protocol", "rose.setting", "rose.data_run_id")  # fmt: skip
    return {k: v for k, v in run_tags.items() if k in keep}


def _score(setting: Setting, fitted: FitResult, data) -> tuple[dict, object]:
    index = {label: i for i, label in enumerate(setting.label_names)}
    probs = predict(setting, fitted, data.texts)  # fp32 on the CPU, as cells
    y_true, y_pred = [index[label] for label in data.labels], probs.argmax(axis=1)
    return (evaluate.classification_metrics(y_true, y_pred, setting.label_names),
            evaluate.confusion(y_true, y_pred, len(setting.label_names)))  # fmt: skip


def _log_confusion(matrix, label_names: list[str], set_name: str, folder: Path) -> None:
    out = folder / "confusion"
    out.mkdir(parents=True, exist_ok=True)
    evaluate.plot_confusion(matrix, label_names, out / f"{set_name}.png", title=set_name)
    evaluate.confusion_csv(matrix, label_names, out / f"{set_name}.csv")
    mlflow.log_artifacts(str(out), "confusion")


def _log_training_input(setting: Setting) -> None:
    """Reference the training data as the run's MLflow dataset input (source: the file or run artifact)."""
    import pandas as pd

    data = setting.train_data
    frame = pd.DataFrame({"text": data.texts, "label": data.labels})
    with warnings.catch_warnings():  # "source can be interpreted in multiple ways": a local file is meant
        warnings.simplefilter("ignore")
        try:
            dataset = mlflow.data.from_pandas(frame, source=setting.data_source, name=data.name, targets="label")
        except Exception:  # a source MLflow cannot resolve: the tags still name the data
            dataset = mlflow.data.from_pandas(frame, name=data.name, targets="label")
    mlflow.log_input(dataset, context="train")


def _register(delta_folder: Path, full_folder: Path, setting: Setting, model_name: str) -> str:
    """Log the best seed's model as a self-contained pyfunc on the parent run and register it."""
    model, tokenizer, labels, max_length = delta.load_classifier(delta_folder)
    delta.save_full(full_folder, model, tokenizer, max_length=max_length)
    info, _ = pyfunc.log_classifier(full_folder, labels, f"{setting.train_data.name}-best-seed",
                                    registered_model_name=model_name)  # fmt: skip
    mlflow.log_metric("model/registered_mb", pyfunc.folder_mb(full_folder))
    log.info("registered %s version %s", model_name, info.registered_model_version)
    return f"models:/{model_name}/{info.registered_model_version}"


def summarise(per_seed: list[dict[str, float]]) -> dict[str, float]:
    """``<metric>_mean`` and ``<metric>_std`` (sample std; 0 for one seed) of every final metric."""
    out = {}
    for key in per_seed[0] if per_seed else []:
        if not key.startswith(SUMMARY_PREFIXES):
            continue
        values = [m[key] for m in per_seed if key in m]
        out[f"{key}_mean"] = statistics.fmean(values)
        out[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    return out
