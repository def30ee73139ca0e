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
CHALLENGER = "challenger"


def best_seed(seeds: pd.DataFrame, candidate: str) -> pd.Series:
    """The seed run of ``candidate`` with the highest dev macro-F1 (ties and missing values: lowest seed)."""
    rows = seeds[seeds["candidate"] == candidate].sort_values("seed")
    if rows.empty:
        raise ValueError(f"no seed runs for {candidate}")
    dev = rows["dev_f1"].astype(float)
    return rows.loc[dev.idxmax()] if dev.notna().any() else rows.iloc[0]


def model_uri(run_id: str) -> str:
    """A self-contained model of the seed run when the train stage can export one, else the model it logged."""
    from rose.train.pyfunc import export_self_contained
    from rose.train.pyfunc import model_uri as logged_uri

    try:
        return export_self_contained(run_id)
    except Exception as exc:  # not a rose classifier (e.g. a custom pyfunc): register the model as logged
        log.warning("no self-contained copy of run %s (%s); registering its model as logged", run_id, repr(exc))
        return logged_uri(run_id)


def register(run_id: str, name: str, tags: dict[str, str] | None = None, *, alias: str = ALIAS,
             description: str | None = None):  # fmt: skip
    """Register the seed run's model under ``name`` and move ``alias`` (``champion``, ``challenger``) to it.

    A version already registered from this run is reused (no second copy). When the champion moves, the previous
    champion version gets ``rose.replaced_by`` (the new version) and ``rose.replaced_at`` (UTC time) tags.
    ``description`` (why it was chosen) becomes the version's description. Returns the model version.
    """
    import mlflow

    client = mlflow.MlflowClient()
    previous = None
    try:
        previous = client.get_model_version_by_alias(name, alias)
    except mlflow.exceptions.MlflowException:
        pass
    version = _version_of(client, name, run_id)
    if version is None:
        version = mlflow.register_model(model_uri(run_id), name, tags={**(tags or {}), "rose.run_id": run_id})
    if description:
        client.update_model_version(name, version.version, description=description)
    if previous is not None and str(previous.version) == str(version.version):
        log.info("the %s of %s is already version %s (run %s)", alias, name, previous.version, run_id)
        return version
    if previous is not None and alias == ALIAS:
        client.set_model_version_tag(name, previous.version, "rose.replaced_by", str(version.version))
        client.set_model_version_tag(
            name, previous.version, "rose.replaced_at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        )
    client.set_registered_model_alias(name, alias, version.version)
    log.info("registered %s version %s as %s (run %s)", name, version.version, alias, run_id)
    return version


def _version_of(client, name: str, run_id: str):
    """The newest version of ``name`` registered from ``run_id`` (tag ``rose.run_id``), or None."""
    escaped = name.replace("'", "\\'")
    try:
        versions = client.search_model_versions(f"name = '{escaped}'")
    except Exception:  # noqa: BLE001 - no such registered model yet
        return None
    mine = [v for v in versions if v.tags.get("rose.run_id") == run_id]
    return max(mine, key=lambda v: int(v.version)) if mine else None
