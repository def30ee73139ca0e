"""Running units of a plan (in any process) through the same library calls as the commands.

``generate`` calls :func:`rose.generate.run.generate`, ``train`` :func:`rose.train.run.train`, ``evaluate``
:func:`rose.train.cells.evaluate_cells` (the cells of one train unit are computed together, so each seed model is
loaded once; the cells of several train units may share a worker), ``score`` :func:`rose.score.run.score`. The stages return an identical finished run instead of running
again, and each run records every unit it serves as its own tag ``rose.unit.<unit digest>`` (a run two units map
to keeps both). A score unit is claimed through the lease by its unit digest, so a retried or repeated unit never
adds a second score run.
"""

from __future__ import annotations

import logging

from rose import tracking
from rose.config import from_mapping
from rose.errors import RoseError
from rose.generate.config import GenerateConfig
from rose.generate.run import generate
from rose.pipeline.plan import Unit, unit_tag
from rose.score.config import ScoreConfig
from rose.score.run import score
from rose.train.cells import by_train, evaluate_cells
from rose.train.config import TrainConfig
from rose.train.run import train

log = logging.getLogger(__name__)


def run_units(experiment: str, units: list[Unit], *, release: bool = True) -> list[tuple[str, str]]:
    """Run units of one stage (evaluate units may come together) in ``experiment``; returns (digest, run id) per
    unit. The units carry their settings and inputs: no study file is read here. ``release``: give back the models
    and trunk states kept loaded across the units (False: a worker keeps them for its next task)."""
    import mlflow

    tracking.setup(experiment)
    for unit in units:
        if not unit.inputs and unit.needs:
            raise RoseError(f"cannot run {unit.label}: the units it reads have not run; run the pipeline again")
        log.info("running %s", unit.label)
    stage = units[0].stage
    try:
        if stage == "evaluate":
            run_ids = _evaluate(experiment, units)
        else:
            run_ids = [{"generate": _generate, "train": _train, "score": _score}[stage](u) for u in units]
    finally:  # models and trunks kept loaded across the units of this call are given back
        if release:
            from rose.train import pool, trunk

            pool.pool().clear()
            trunk.cache().clear()
    client = mlflow.MlflowClient()
    for unit, run_id in zip(units, run_ids, strict=True):
        client.set_tag(run_id, unit_tag(unit.digest), unit.stage)
    return [(u.digest, r) for u, r in zip(units, run_ids, strict=True)]


# The stage libraries below import torch, transformers or MLflow at their top: imported where a unit runs.
def _generate(unit: Unit) -> str:
    if unit.candidate is not None and unit.candidate.imported:  # a dataset made elsewhere: imported, not generated
        from rose.importing import ImportConfig, import_dataset

        return import_dataset(from_mapping(ImportConfig, unit.settings, where=f"{unit.label}: import")).run_id

    config = from_mapping(GenerateConfig, unit.settings, where=f"{unit.label}: generate")
    return generate(config).run_id


def _train(unit: Unit) -> str:
    config = from_mapping(TrainConfig, {**unit.settings, "data": unit.inputs["data"], "eval": []},
                          where=f"{unit.label}: train")  # fmt: skip
    return train(config).parent_run_id


def _evaluate(experiment: str, units: list[Unit]) -> list[str]:
    """The cells of the units, computed per train unit (each seed model loaded once for all its datasets)."""
    run_ids: dict[str, str] = {}
    for train_run_id, group in by_train(units, lambda unit: unit.inputs["train"]).items():
        ids = evaluate_cells(experiment, train_run_id, [u.inputs["data"] for u in group])
        run_ids.update({u.digest: r for u, r in zip(group, ids, strict=True)})
    return [run_ids[u.digest] for u in units]


def _score(unit: Unit) -> str:
    config = from_mapping(ScoreConfig, {**unit.settings, **unit.inputs}, where=f"{unit.label}: score")
    return score(config, digest=unit.digest).run_id
