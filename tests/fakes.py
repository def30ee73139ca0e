"""Shared helpers for tests that need generated data without a model (the ``fake`` generation backend).

``generate_config(tmp_path, ...)`` is a :class:`~rose.generate.config.GenerateConfig` on the fake backend whose
cache and output live under ``tmp_path``; ``fake_generate(tmp_path, ...)`` runs it into an MLflow store under
``tmp_path`` (pass pytest's ``monkeypatch``) and returns the :class:`~rose.generate.run.GenerateResult` (a run id and a ``data.jsonl``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

try:
    from tests.tiny import BUNDLED, HAS_SHARED, SHARED_DATA
except ImportError:  # tests/ itself on the path
    from tiny import BUNDLED, HAS_SHARED, SHARED_DATA

# Welsh from ../shared/data; on a plain clone, English from rose's bundled topic sentences (nine per label)
LANGUAGE, LANGUAGE_NAME = ("cy", "Welsh") if HAS_SHARED else ("en", "English")
SOURCE = SHARED_DATA if HAS_SHARED else BUNDLED
DEMOS = 10 if HAS_SHARED else 9  # demonstrations a label can get (at most 10, the default)


def generate_config(tmp_path: Path, **overrides):
    from rose.generate.config import GenerateConfig

    values = dict(
        task="topic",
        language=LANGUAGE,
        generator="fake-lm",
        backend="fake",
        strategy="target_demos",
        per_label=5,
        examples_per_request=5,
        source=str(SOURCE),
        cache_dir=str(tmp_path / "cache"),
        output_dir=str(tmp_path / "out"),
    )
    values.update(overrides)
    return GenerateConfig(**values)


def fake_generate(tmp_path: Path, monkeypatch, instance=None, **overrides):
    """A generate run on the fake backend, tracked in ``tmp_path/mlflow.db`` with artifacts under ``tmp_path``."""
    from rose.generate.run import generate

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_db(tmp_path))
    monkeypatch.chdir(tmp_path)
    return generate(generate_config(tmp_path, **overrides), backend=instance)


def tracking_db(folder: Path) -> str:
    """A tracking URI for ``folder/mlflow.db``, copied from a template store created once per machine.

    Creating an MLflow SQLite store runs its migrations (seconds); a copy of a migrated one takes milliseconds.
    """
    import mlflow

    target = Path(folder) / "mlflow.db"
    if not target.exists():
        template = Path(tempfile.gettempdir()) / f"rose-test-mlflow-{mlflow.__version__}.db"
        if not template.exists():
            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

            tmp = template.with_suffix(f".{os.getpid()}.tmp")
            store = SqlAlchemyStore(f"sqlite:///{tmp}", str(Path(tempfile.gettempdir()) / "rose-test-artifacts"))
            store.engine.dispose()
            os.replace(tmp, template)
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, target)
    return f"sqlite:///{target}"


def use_tracking_db(folder: Path, monkeypatch) -> str:
    """Point MLflow (this process and the processes it starts) at a fresh store in ``folder`` and work there."""
    import mlflow

    uri = tracking_db(folder)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    monkeypatch.chdir(folder)
    return uri


@contextlib.contextmanager
def mlflow_server(folder: Path, monkeypatch, workers: int = 2) -> Iterator[str]:
    """A real ``mlflow server`` on 127.0.0.1 (SQLite behind it) as the tracking URI, stopped on exit."""
    import httpx
    import mlflow

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
         "--artifacts-destination", str(folder / "server-artifacts"), "--workers", str(workers)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=folder,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                if httpx.get(f"{uri}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            raise RuntimeError("mlflow server did not start")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        monkeypatch.chdir(folder)
        yield uri
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def rose(capsys, *argv) -> str:
    """Run ``rose <argv>`` in this process as a user would type it; returns what it printed (asserts exit 0)."""
    from rose.cli import main

    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, f"rose {argv[0]} exited {code}: {err.strip().splitlines()[-3:]}"
    return out


def run_id(printed: str) -> str:
    """The run id ``rose`` printed (``run id: <32 hex>``)."""
    return re.search(r"run id: ([0-9a-f]{32})", printed).group(1)
