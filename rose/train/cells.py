"""Cross-evaluation cells: a trained setting's seed models scored on one dataset, one MLflow run per cell.

This is the one code path for cells: the pipeline's evaluate units and ``rose score``'s filling of missing
cells both call :func:`evaluate_cells` (and ``rose evaluate`` is its command).

A cell is an ``evaluate`` run (``rose.stage=evaluate``) keyed by the train parent run, the dataset and the
evaluation settings. Tags: ``rose.train_run_id`` (the train parent run), ``rose.train_digest`` (its
``rose.digest``), ``rose.setting`` (the training settings without the data, shared by comparable classifiers),
``rose.train_data`` (candidate name or ``human``), ``rose.classifier``, ``rose.protocol``, ``rose.dataset``
(the generate run id, or ``human:<digest of the test split>``), ``rose.eval_set`` (the dataset's candidate name,
or ``human``), ``rose.data_run_id`` (generated datasets), ``rose.digest`` (the cell's digest). Metrics per seed:
``seed/<seed>/macro_f1``, ``seed/<seed>/accuracy``, ``seed/<seed>/f1/<label>``, ``seed/<seed>/n``; and
``macro_f1_mean``, ``macro_f1_std``, ``n``; artifacts ``confusion/seed<seed>.csv``. Macro-F1 is :func:`rose.metrics.classification_metrics`, over every
label of the task.
"""

from __future__ import annotations

import logging
import re
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from rose import tasks, tracking
from rose.errors import RoseError
from rose.generated_data import HUMAN_NAME, HUMAN_PREFIX, human_source, is_run_id, load_ref
from rose.human_data import split_digest
from rose.metrics import classification_metrics, confusion
from rose.train.evaluate import confusion_csv, label_indices, prefixed, pyfunc_labels

log = logging.getLogger(__name__)
T = TypeVar("T")

# What decides a cell's value besides the model and the data: bump when the metric or the split changes.
EVAL_SETTINGS = {"metric": "macro-F1 over the task's labels, 0 for a label absent from truth and predictions",
                 "human_split": "test", "generated_rows": "all"}  # fmt: skip
SEED_METRIC = re.compile(r"^seed/(?P<seed>-?\d+)/(?P<metric>.+)$")


@dataclass
class Dataset:
    """A dataset a cell is computed on: ``ref`` (how to load it), ``key`` (what identifies its content)."""

    ref: str
    key: str
    name: str  # candidate name, or ``human``


def dataset(ref: str, task: str | tasks.Task, language: str, name: str | None = None) -> Dataset:
    """The dataset a reference names: a generate run id (``runs:/`` allowed) or ``human:<source>`` (test split)."""
    ref = ref.strip()
    if ref.startswith(HUMAN_PREFIX):
        source = human_source(ref)
        return Dataset(ref, f"{HUMAN_PREFIX}{split_digest(task, language, 'test', source)}", HUMAN_NAME)
    if is_run_id(ref):
        run_id = ref.removeprefix("runs:/")
        if name is None:
            import mlflow

            name = mlflow.MlflowClient().get_run(run_id).data.tags.get("rose.candidate", run_id)
        return Dataset(run_id, run_id, name)
    raise RoseError(f"a cell's dataset is a generate run id or human:<data folder>, not {ref!r}")


def by_train(items: Iterable[T], train_run_id: Callable[[T], str]) -> dict[str, list[T]]:
    """Cells to compute grouped by the train run whose seed models score them, in first-seen order: each group is
    one :func:`evaluate_cells` call, so a classifier's seed models are loaded once for all its datasets."""
    groups: dict[str, list[T]] = {}
    for item in items:
        groups.setdefault(train_run_id(item), []).append(item)
    return groups


def cell_digest(train_digest: str, dataset_key: str) -> str:
    return tracking.digest({"evaluate": EVAL_SETTINGS, "train": train_digest, "dataset": dataset_key})


def command(experiment: str, train_run_id: str, data_ref: str) -> str:
    """The command that computes a cell."""
    return f"rose evaluate --experiment {experiment} --train-run {train_run_id} --data {data_ref}"


def evaluate_cells(experiment: str, train_run_id: str, data_refs: list[str], trunk: bool = True) -> list[str]:
    """The cells of the train setting ``train_run_id`` on each dataset (an existing finished cell is reused, or
    grown by the seeds the setting gained since: only those are scored); each seed model is loaded once for all
    the datasets. Returns the evaluate run ids, in order.

    With ``trunk`` (the default), seed models trained above a frozen trunk are scored through
    :mod:`rose.train.seed_models` (the base loaded once per worker, the frozen layers' output once per dataset);
    the values are those of the logged pyfunc models."""
    tracking.setup(experiment)
    parent = _train_parent(train_run_id)
    tags = parent.data.tags
    task, language = tasks.from_run(parent), tags["rose.language"]
    seeds = sorted(
        (r for r in tracking.child_runs(train_run_id) if r.info.status == "FINISHED" and "rose.seed" in r.data.tags),
        key=lambda r: int(r.data.tags["rose.seed"]),
    )
    if not seeds:
        raise RoseError(f"train run {train_run_id} has no finished seed runs: train it again with `rose train`")
    all_seeds = {int(r.data.tags["rose.seed"]) for r in seeds}
    todo, grow, out = [], {}, {}
    for ref in data_refs:
        data = dataset(ref, task, language)
        digest = cell_digest(tags.get("rose.digest", train_run_id), data.key)
        if done := tracking.find_finished(experiment, "evaluate", digest):
            missing = all_seeds - set(seed_scores(done.data.metrics))
            if missing:  # the setting grew by seeds: score those only, on the same cell run
                grow[ref] = done
                todo.append((ref, data, digest))
            out[ref] = done.info.run_id
        else:
            todo.append((ref, data, digest))
    if not todo:
        return [out[r] for r in data_refs]
    labels = list(task.labels)
    loaded = {(ref, data.name): load_ref(ref, task, language, split="test", strict_labels=False, name=data.name)
              for ref, data, _ in todo}  # fmt: skip
    # One run per cell, even when two commands fill the same cells at once: each cell is claimed (in digest
    # order, so two claimers never wait on each other) before any model is loaded; a cell another live process
    # holds is waited for and reused.
    claims = {}
    try:
        for ref, data, digest in sorted(todo, key=lambda item: item[2]):
            if ref in grow:
                continue
            claim = tracking.claim(
                experiment, "evaluate", digest, _cell_tags(parent, data, digest), _cell_name(parent, data)
            )
            if claim.finished is not None:
                out[ref] = claim.finished.info.run_id
            else:
                claims[ref] = claim
        todo = [item for item in todo if item[0] in claims or item[0] in grow]
        scores: dict[str, dict[int, dict[str, float]]] = {ref: {} for ref, _, _ in todo}
        matrices: dict[str, dict[int, object]] = {ref: {} for ref, _, _ in todo}
        model_ids: dict[int, str | None] = {}
        for seed_run in seeds if todo else []:
            seed = int(seed_run.data.tags["rose.seed"])
            model_ids[seed] = _model_id(seed_run)
            wanted = [(ref, data) for ref, data, _ in todo
                      if ref not in grow or f"seed/{seed}/macro_f1" not in grow[ref].data.metrics]  # fmt: skip
            if not wanted:
                continue
            model = _load_model(seed_run.info.run_id, experiment, parent, trunk)
            for ref, data in wanted:
                texts = loaded[ref, data.name]
                scores[ref][seed], matrices[ref][seed] = _score(model, texts.texts, texts.labels, labels,
                                                                f"{ref} ({data.name})")  # fmt: skip
            del model
        for ref, data, digest in todo:
            if ref in grow:
                out[ref] = _grow_cell(grow[ref], scores[ref], matrices[ref], labels)
                continue
            entity = mlflow_dataset(data, loaded[ref, data.name])
            out[ref] = _log_cell(parent, data, digest, scores[ref], matrices[ref], labels, claims.pop(ref),
                                 linked=(entity, model_ids))  # fmt: skip
            log.info("cell %s on %s: macro-F1 %.4f over %d seed(s)", tags.get("rose.train_data"), data.name,
                     statistics.fmean(s["macro_f1"] for s in scores[ref].values()), len(scores[ref]))  # fmt: skip
    except BaseException as exc:  # cells claimed and not logged end FAILED (KILLED on Ctrl-C), their leases freed
        _give_up(claims.values(), exc)
        raise
    return [out[r] for r in data_refs]


def _grow_cell(run, per_seed: dict[int, dict[str, float]], matrices: dict, labels: list[str]) -> str:
    """Add the scores of new seeds to a finished cell; its mean and std then cover every seed."""
    import tempfile
    from pathlib import Path

    import mlflow

    every = {**seed_scores(run.data.metrics), **per_seed}
    metrics = {k: v for seed, m in per_seed.items() for k, v in prefixed(f"seed/{seed}", m).items()}
    f1 = [m["macro_f1"] for m in every.values()]
    metrics.update(macro_f1_mean=statistics.fmean(f1), macro_f1_std=statistics.stdev(f1) if len(f1) > 1 else 0.0)
    client = mlflow.MlflowClient()
    client.log_batch(run.info.run_id, metrics=[mlflow.entities.Metric(k, v, int(time.time() * 1000), 0)
                                               for k, v in metrics.items()])  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="rose-cell-") as tmp:
        for seed, matrix in matrices.items():
            confusion_csv(matrix, labels, Path(tmp) / f"seed{seed}.csv")
        client.log_artifacts(run.info.run_id, tmp, "confusion")
    log.info("cell %s on %s: seed(s) %s added; macro-F1 %.4f over %d seed(s)", run.data.tags.get("rose.train_data"),
             run.data.tags.get("rose.eval_set"), ",".join(map(str, sorted(per_seed))), metrics["macro_f1_mean"],
             len(every))  # fmt: skip
    return run.info.run_id


def _give_up(claims, exc: BaseException) -> None:
    import mlflow

    status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
    for claim in claims:
        try:
            tracking.record_error(claim.run_id, exc)
            mlflow.MlflowClient().set_terminated(claim.run_id, status)
        finally:
            claim.lease.release()


def _train_parent(run_id: str):
    import mlflow

    try:
        run = mlflow.MlflowClient().get_run(run_id)
    except Exception as exc:  # noqa: BLE001 - MlflowException: the message is what matters
        raise RoseError(f"no train run {run_id}: {str(exc).splitlines()[0]}") from None
    if run.data.tags.get("rose.stage") != "train" or run.data.tags.get("rose.role") != "setting":
        raise RoseError(f"run {run_id} is not a train setting run (rose.stage=train, rose.role=setting)")
    if run.info.status != "FINISHED":
        raise RoseError(f"train run {run_id} has not finished ({run.info.status}): finish its training first")
    return run


def _model_id(seed_run) -> str | None:
    """The id of the LoggedModel a seed run logged (None for a run from before MLflow 3's LoggedModels)."""
    outputs = seed_run.outputs.model_outputs if seed_run.outputs else []
    return outputs[0].model_id if outputs else None


HUMAN_TEST = "human-test"


def mlflow_dataset(data: Dataset, loaded):
    """The cell's dataset as an MLflow dataset entity: a generate run's own (same name and digest as the
    generate run logged it), else one made from the loaded examples (the human test split: ``human-test``)."""
    import warnings

    import mlflow
    import pandas as pd

    if not data.key.startswith(HUMAN_PREFIX):
        inputs = mlflow.MlflowClient().get_run(data.key).inputs
        logged = {next((t.value for t in i.tags if t.key == "mlflow.data.context"), ""): i.dataset
                  for i in (inputs.dataset_inputs if inputs else [])}  # fmt: skip
        for context in ("generated", "imported", *logged):
            if context in logged:
                return logged[context]
    frame = pd.DataFrame({"text": loaded.texts, "label": loaded.labels})
    name = HUMAN_TEST if data.key.startswith(HUMAN_PREFIX) else data.name
    source = data.ref[len(HUMAN_PREFIX) :] if data.ref.startswith(HUMAN_PREFIX) else data.ref
    with warnings.catch_warnings():  # mlflow's notes on ambiguous local sources
        warnings.simplefilter("ignore")
        try:
            made = mlflow.data.from_pandas(frame, source=source, name=name, targets="label")
        except Exception:  # noqa: BLE001 - a source MLflow cannot resolve (a hub id): the tags still name it
            made = mlflow.data.from_pandas(frame, name=name, targets="label")
    return made._to_mlflow_entity()


def _load_model(seed_run_id: str, experiment: str, parent, trunk: bool = True):
    import mlflow

    from rose.train.pyfunc import model_uri

    if trunk:
        from rose.train import seed_models

        folder = seed_models.download(seed_run_id)
        model = seed_models.load(folder) if folder is not None else None
        if model is not None:
            return model
    try:
        return mlflow.pyfunc.load_model(model_uri(seed_run_id))
    except Exception as exc:  # noqa: BLE001 - no model logged, or a flavour this environment cannot load
        tags = parent.data.tags
        data = tags.get("rose.data_run_id") or tags.get("rose.train_data")
        raise RoseError(
            f"the model of seed run {seed_run_id} cannot be loaded ({str(exc).splitlines()[0][:160]}): train it "
            f"again with models logged (`rose train --experiment {experiment} --task {tags.get('rose.task')} "
            f"--language {tags.get('rose.language')} --data {data} --log-models true`)"
        ) from None


def _score(model, texts: list[str], truth: list[str], labels: list[str], where: str) -> tuple[dict, object]:
    """(metrics, confusion matrix) of one seed model on a dataset (examples with a label of the task)."""
    keep = [i for i, label in enumerate(truth) if label in labels]
    if not keep:
        raise RoseError(f"{where}: no example with a label of the task to evaluate on")
    kept = [texts[i] for i in keep]
    predicted = model.predict(kept) if hasattr(model, "probabilities") else pyfunc_labels(model, kept)[0]
    y_true, y_pred = label_indices([truth[i] for i in keep], predicted, labels)
    return classification_metrics(y_true, y_pred, labels), confusion(y_true, y_pred, len(labels))


def _cell_tags(parent, data: Dataset, digest: str) -> dict[str, str]:
    t = parent.data.tags
    extra = {k: t.get(f"rose.{k}") for k in ("train_data", "classifier", "protocol", "setting")}
    return tracking.tags(
        "evaluate", tasks.from_run(parent), t["rose.language"], digest=digest, train_run_id=parent.info.run_id,
        train_digest=t.get("rose.digest"), dataset=data.key, eval_set=data.name,
        data_run_id=None if data.key.startswith(HUMAN_PREFIX) else data.key, **extra,
    )  # fmt: skip


def _cell_name(parent, data: Dataset) -> str:
    return tracking.run_name("evaluate", f"{parent.data.tags.get('rose.train_data', 'train')} on {data.name}")


def _log_cell(parent, data: Dataset, digest: str, per_seed: dict[int, dict[str, float]], matrices: dict,
              labels: list[str], claim, linked=None) -> str:  # fmt: skip
    import tempfile
    from pathlib import Path

    import mlflow

    metrics = {k: v for seed, m in per_seed.items() for k, v in prefixed(f"seed/{seed}", m).items()}
    f1 = [m["macro_f1"] for m in per_seed.values()]
    n = next(iter(per_seed.values()))["n"]
    metrics.update(macro_f1_mean=statistics.fmean(f1), macro_f1_std=statistics.stdev(f1) if len(f1) > 1 else 0.0,
                   n=float(n))  # fmt: skip
    with tracking.run(_cell_name(parent, data), _cell_tags(parent, data, digest), run_id=claim.run_id,
                      lease=claim.lease, params={"train_run_id": parent.info.run_id, "data": data.ref}) as run, \
            tempfile.TemporaryDirectory(prefix="rose-cell-") as tmp:  # fmt: skip
        mlflow.log_metrics(metrics)
        mlflow.set_tag("mlflow.note.content", (
            f"{parent.data.tags.get('rose.train_data', 'the')} classifier (seeds {', '.join(map(str, per_seed))}) "
            f"on {data.name}: macro-F1 {metrics['macro_f1_mean']:.4f} ± {metrics['macro_f1_std']:.4f} over seeds, "
            f"{int(n)} examples."))  # fmt: skip
        if linked is not None:
            log_linked(run.info.run_id, per_seed, *linked)
        for seed, matrix in matrices.items():
            confusion_csv(matrix, labels, Path(tmp) / f"seed{seed}.csv")
        mlflow.log_artifacts(tmp, "confusion")
        return run.info.run_id


LINKED = ("macro_f1", "accuracy")


def log_linked(run_id: str, per_seed: dict[int, dict[str, float]], dataset, model_ids: dict[int, str | None]) -> None:
    """Each seed model's ``macro_f1`` and ``accuracy`` on the dataset, linked to the model and the dataset (step =
    seed), with the dataset (context ``evaluation``) and the models as the run's inputs: MLflow's Models view then
    shows every classifier's score on every dataset."""
    import time

    import mlflow
    from mlflow.entities import DatasetInput, InputTag, LoggedModelInput, Metric

    client = mlflow.MlflowClient()
    models = {seed: mid for seed, mid in model_ids.items() if mid and seed in per_seed}
    client.log_inputs(run_id, datasets=[DatasetInput(dataset, tags=[InputTag("mlflow.data.context", "evaluation")])],
                      models=[LoggedModelInput(mid) for mid in models.values()])  # fmt: skip
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[
        Metric(key, float(per_seed[seed][key]), now, seed, model_id=mid, dataset_name=dataset.name,
               dataset_digest=dataset.digest)
        for seed, mid in models.items() for key in LINKED
    ])  # fmt: skip


def seed_scores(metrics: dict[str, float]) -> dict[int, dict[str, float]]:
    """``{seed: {metric: value}}`` from an evaluate run's metrics."""
    out: dict[int, dict[str, float]] = {}
    for key, value in metrics.items():
        if match := SEED_METRIC.match(key):
            out.setdefault(int(match["seed"]), {})[match["metric"]] = value
    return out
