"""The label-free selectors of one case: from its candidates' datasets, their trained seeds and the unlabelled pool
to one value per candidate and selector (:mod:`rose.score.selectors` does the arithmetic).

One embedding pass per dataset and per pool serves every embedding-based selector (and the intrinsic embedding
metrics: the embedder is cached by text, :func:`rose.score.embeddings.cached`). ATC and agreement reuse the
trained seeds' logged models (no new training): each seed model is loaded once and predicts the pool and its own
dev split, rebuilt from the seed run's parameters the way training drew it. A selector that cannot be computed is
"not available", with the reason; a score without a pool reports the target-text selectors so, and no error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rose.errors import RoseError
from rose.score import selectors as sel
from rose.score.pool import Pool

log = logging.getLogger(__name__)

NAMES = tuple(sel.DIRECTION)
EMBEDDING = ("mmd_target", "pad_target", "mauve_target", "dcscore", "rose_probe")
MODELS = ("atc_target", "agreement_target")


@dataclass
class CandidateData:
    """What the selectors read of one candidate: its dataset and its trained seeds' runs."""

    texts: list[str]
    labels: list[str]
    seed_runs: dict[int, str] = field(default_factory=dict)  # seed -> seed run id (with a logged model)


@dataclass
class LabelFree:
    """The selectors of one case: values per candidate, why some are not available, and what each cost."""

    values: pd.DataFrame  # candidate x selector name (every name of NAMES), NaN where not available
    reasons: dict[str, str] = field(default_factory=dict)  # selector -> why it is not available (or not for some)
    seconds: dict[str, float] = field(default_factory=dict)  # selector -> seconds; "embedding" for the passes
    probe: pd.DataFrame | None = None  # probe round-robin matrix
    agreement: pd.DataFrame | None = None  # pairwise agreement on the pool
    pool: Pool | None = None
    probe_vs_rose: float = float("nan")  # Spearman of rose_probe with fine-tuned RoSE, set by the caller
    pool_notes: list[str] = field(default_factory=list)  # what reading the pool said (set by the caller)

    def within(self, candidates: Sequence[str]) -> pd.DataFrame:
        """The values restricted to a group of candidates: rose_probe and agreement_target re-played within it."""
        out = self.values.reindex(list(candidates)).copy()
        if self.probe is not None:
            out["rose_probe"] = pd.Series(sel.rose_probe(self.probe, candidates))
        if self.agreement is not None:
            out["agreement_target"] = pd.Series(sel.agreement_target_from(self.agreement, candidates))
        return out

    def notes(self) -> list[str]:
        lines = [f"{name} not available: {why}" for name, why in self.reasons.items()]
        return ([self.pool.describe()] if self.pool is not None else []) + self.pool_notes + lines


def compute(
    data: dict[str, CandidateData],
    label_set: Sequence[str],
    *,
    embed: Callable[[list[str]], np.ndarray] | None,
    pool: Pool | None,
    load_model: Callable[[str], object] | None = None,
    dev_split: Callable[[str], tuple[list[str], list[str]]] | None = None,
    seed: int = 0,
) -> LabelFree:
    """Every selector of NAMES for the candidates in ``data``.

    ``embed`` turns texts into embeddings (None: the embedding selectors are not available); ``pool`` is the
    cleaned unlabelled pool (None: the target-text selectors are not available); ``load_model(seed_run_id)`` returns
    a logged rose classifier (pyfunc) and ``dev_split(seed_run_id)`` the (texts, labels) of the dev split its
    training held out (None: ATC and agreement are not available).
    """
    names = list(data)
    values = pd.DataFrame(np.nan, index=pd.Index(names, name="candidate"), columns=list(NAMES))
    out = LabelFree(values, pool=pool)
    no_pool = "no unlabelled pool (rose score --unlabelled FILE or human-train)"
    if pool is None:
        for name in sel.TARGET_TEXT:
            out.reasons[name] = no_pool
    if embed is None:
        for name in EMBEDDING:
            out.reasons.setdefault(name, "no embedding model (--embedding-model is empty)")
    else:
        _embedding_selectors(out, data, label_set, embed, pool, seed)
    if pool is not None:
        if load_model is None:
            for name in MODELS:
                out.reasons[name] = "the trained seeds' models cannot be loaded here"
        else:
            _model_selectors(out, data, label_set, pool, load_model, dev_split, seed)
    return out


def _timed(out: LabelFree, name: str, start: float) -> None:
    out.seconds[name] = out.seconds.get(name, 0.0) + time.perf_counter() - start


def _embedding_selectors(out: LabelFree, data: dict[str, CandidateData], label_set, embed, pool: Pool | None,
                         seed: int) -> None:  # fmt: skip
    start = time.perf_counter()
    emb = {name: np.asarray(embed(d.texts)) for name, d in data.items() if d.texts}
    pool_emb = np.asarray(embed(pool.texts)) if pool is not None else None
    _timed(out, "embedding", start)
    if not emb:
        for name in EMBEDDING:
            out.reasons.setdefault(name, "the candidates' datasets are empty")
        return
    size = min(len(e) for e in emb.values())
    start = time.perf_counter()
    for name, e in emb.items():
        out.values.loc[name, "dcscore"] = sel.dcscore(e, size=size, seed=seed)
    _timed(out, "dcscore", start)
    start = time.perf_counter()
    labels = {name: data[name].labels for name in emb}
    seeds = sorted({s for d in data.values() for s in d.seed_runs}) or [seed]
    per_label = _smallest_label_count(labels, label_set)
    out.probe = sel.probe_matrix(emb, labels, label_set, seeds=seeds, per_label=per_label)
    for name, value in sel.rose_probe(out.probe).items():
        out.values.loc[name, "rose_probe"] = value
    _timed(out, "rose_probe", start)
    if pool_emb is None:
        return
    for selector, fn in (("mmd_target", sel.mmd_target), ("pad_target", sel.pad_target),
                         ("mauve_target", sel.mauve_target)):  # fmt: skip
        start = time.perf_counter()
        for name, e in emb.items():
            try:
                out.values.loc[name, selector] = fn(e, pool_emb, seed=seed)
            except sel.NotAvailable as exc:
                out.reasons[selector] = f"{name}: {exc}" if selector not in out.reasons else out.reasons[selector]
        _timed(out, selector, start)


def _smallest_label_count(labels: dict[str, list[str]], label_set) -> int | None:
    """The smallest positive count of a label over the candidates: every probe is trained on as many per label."""
    counts = [list(labels_of).count(lab) for labels_of in labels.values() for lab in label_set]
    positive = [n for n in counts if n > 0]
    return min(positive) if positive else None


def _model_selectors(out: LabelFree, data: dict[str, CandidateData], label_set, pool: Pool, load_model, dev_split,
                     seed: int) -> None:  # fmt: skip
    """ATC and agreement from every seed model: one load per seed, predicting the pool and its dev split."""
    start = time.perf_counter()
    predictions: dict[str, list[np.ndarray]] = {}
    atc: dict[str, tuple[list, list, list]] = {}
    problems: dict[str, str] = {}
    for name, d in data.items():
        for seed_value, run_id in sorted(d.seed_runs.items()):
            try:
                model = load_model(run_id)
                pool_probs, names = _probabilities(model, pool.texts, label_set)
            except RoseError as exc:
                problems.setdefault("agreement_target", f"{name} seed {seed_value}: {exc}")
                problems.setdefault("atc_target", f"{name} seed {seed_value}: {exc}")
                continue
            predictions.setdefault(name, []).append(np.asarray(names)[pool_probs.argmax(axis=1)])
            try:
                texts, truth = dev_split(run_id) if dev_split else ([], [])
                if not texts:
                    raise RoseError("its dev split cannot be rebuilt")
                dev_probs, _ = _probabilities(model, texts, label_set)
                index = {lab: i for i, lab in enumerate(names)}
                atc.setdefault(name, ([], [], []))
                atc[name][0].append(dev_probs)
                atc[name][1].append(np.asarray([index.get(t, -1) for t in truth]))
                atc[name][2].append(pool_probs)
            except RoseError as exc:
                problems.setdefault("atc_target", f"{name} seed {seed_value}: {exc}")
            del model
    loaded = time.perf_counter() - start
    start = time.perf_counter()
    for name, (dev, truth, pools) in atc.items():
        out.values.loc[name, "atc_target"] = sel.atc_target(dev, truth, pools)
    out.seconds["atc_target"] = loaded + time.perf_counter() - start  # the model passes are shared with agreement
    start = time.perf_counter()
    if len(predictions) >= 2:
        out.agreement = sel.agreement_matrix(predictions)
        for name, value in sel.agreement_target_from(out.agreement).items():
            out.values.loc[name, "agreement_target"] = value
    else:
        problems.setdefault("agreement_target", "fewer than two candidates' classifiers could predict the pool")
    out.seconds["agreement_target"] = loaded + time.perf_counter() - start
    for selector, why in problems.items():
        out.reasons.setdefault(selector, why)


def _probabilities(model, texts: list[str], label_set: Sequence[str], batch: int = 256) -> tuple[np.ndarray, list]:
    """(texts x labels probabilities, the model's label names) from a logged rose classifier's predictions."""
    frames = [model.predict(pd.DataFrame({"text": texts[i : i + batch]})) for i in range(0, len(texts), batch)]
    if not frames:
        raise RoseError("no texts to predict")
    pred = pd.concat(frames, ignore_index=True)
    columns = [c for c in pred.columns if str(c).startswith("prob_")]
    if not columns:
        raise RoseError("the model gives no probabilities (prob_<label> columns)")
    return pred[columns].to_numpy(dtype=float), [c[5:] for c in columns]


# ---- the trained seeds (MLflow) -----------------------------------------------------------------------------------
def load_seed_model(seed_run_id: str):
    """The logged classifier of a train seed run (pyfunc); RoseError when it cannot be loaded."""
    import mlflow

    from rose.train.pyfunc import model_uri

    try:
        return mlflow.pyfunc.load_model(model_uri(seed_run_id))
    except Exception as exc:  # noqa: BLE001 - no model logged, or a base model missing here
        raise RoseError(
            f"the model of seed run {seed_run_id} cannot be loaded ({str(exc).splitlines()[0][:160]})"
        ) from None


def seed_dev_split(seed_run_id: str) -> tuple[list[str], list[str]]:
    """The dev split a train seed run held out, rebuilt from its parameters as training drew it (the same capped
    training data, :func:`rose.train.fit.split_index` with the run's seed and dev fraction)."""
    import mlflow

    from rose.tasks import from_run
    from rose.train.config import TrainConfig
    from rose.train.fit import load_training_data, split_index

    run = mlflow.MlflowClient().get_run(seed_run_id)
    params = run.data.params
    needed = ("language", "data", "per_label", "dev_fraction", "seed")
    if any(k not in params for k in needed):
        raise RoseError(f"seed run {seed_run_id} does not record how its dev split was drawn")
    config = TrainConfig(task=from_run(run), language=params["language"], data=params["data"],  # type: ignore[arg-type]
                         per_label=int(params["per_label"]), dev_fraction=float(params["dev_fraction"]),
                         text_column=params.get("text_column", ""), label_column=params.get("label_column", ""),
                         label_map=params.get("label_map", ""), encoding=params.get("encoding", "") or "utf-8")  # fmt: skip
    data = load_training_data(config)
    _, dev = split_index(data, config.dev_fraction, int(params["seed"]))
    return [data.texts[i] for i in dev], [data.labels[i] for i in dev]
