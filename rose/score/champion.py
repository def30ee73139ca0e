"""Register the classifier a team should deploy: the picked candidate's best seed, under alias ``champion``.

The seed is chosen by its ``dev/macro_f1`` (the held-out split of its own synthetic data), so the choice needs no
human test data, like RoSE itself. The previous champion version keeps tags saying it was replaced.
"""

from __future__ import annotations

import logging
import time

import pandas as pd

log = logging.getLogger(__name__)

ALIAS = "champion"


def best_seed(seeds: pd.DataFrame, candidate: str) -> pd.Series:
    """The seed run of ``candidate`` with the highest dev macro-F1 (ties and missing values: lowest seed)."""
    rows = seeds[seeds["candidate"] == candidate].sort_values("seed")
    if rows.empty:
        raise ValueError(f"no seed runs for {candidate}")
    dev = rows["dev_f1"].astype(float)
    return rows.loc[dev.idxmax()] if dev.notna().any() else rows.iloc[0]


def model_uri(run_id: str) -> str:
    """A self-contained model of the seed run when the train stage can export one, else ``runs:/<id>/model``."""
    try:
        from rose.train.pyfunc import export_self_contained  # type: ignore[attr-defined]
    except ImportError:
        return f"runs:/{run_id}/model"
    try:
        return export_self_contained(run_id)
    except Exception as exc:  # not a rose classifier (e.g. a custom pyfunc): register the model as logged
        log.warning("no self-contained copy of run %s (%s); registering its model as logged", run_id, repr(exc))
        return f"runs:/{run_id}/model"


def register(run_id: str, name: str, tags: dict[str, str] | None = None):
    """Register the seed run's model under ``name`` and move the ``champion`` alias to it.

    If the champion already comes from this run, nothing changes. Otherwise the previous champion version gets
    ``rose.replaced_by`` (the new version) and ``rose.replaced_at`` (UTC time) tags. Returns the model version.
    """
    import mlflow

    client = mlflow.MlflowClient()
    previous = None
    try:
        previous = client.get_model_version_by_alias(name, ALIAS)
    except mlflow.exceptions.MlflowException:
        pass
    if previous is not None and previous.tags.get("rose.run_id") == run_id:
        log.info("the champion of %s is already version %s (run %s)", name, previous.version, run_id)
        return previous
    version = mlflow.register_model(model_uri(run_id), name, tags={**(tags or {}), "rose.run_id": run_id})
    if previous is not None:
        client.set_model_version_tag(name, previous.version, "rose.replaced_by", str(version.version))
        client.set_model_version_tag(
            name, previous.version, "rose.replaced_at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        )
    client.set_registered_model_alias(name, ALIAS, version.version)
    log.info("registered %s version %s as %s (run %s)", name, version.version, ALIAS, run_id)
    return version
