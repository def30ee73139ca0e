"""The MLflow UI as rose's users open it: an experiment's address, a local ``mlflow server`` on a store, and headless
Chromium to load (and photograph) its pages.

MLflow 3.17's UI chooses an experiment's first page by its "GenAI / Model training" switch (remembered by the
browser, GenAI when it has none), not by the experiment's ``mlflow.experimentKind`` tag: the address rose prints
carries ``workflowType=machine_learning``, so the experiment opens on its training runs in any browser.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from rose.errors import RoseError

WORKFLOW = "workflowType=machine_learning"
TABS = ("runs", "models")


def experiment_url(base: str, experiment_id: str, tab: str = "runs") -> str:
    """The address of an experiment's training runs (``tab="runs"``) or logged models (``"models"``)."""
    if tab not in TABS:
        raise ValueError(f"unknown tab {tab!r}: use one of {', '.join(TABS)}")
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/{tab}?{WORKFLOW}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(store_uri: str, port: int | None = None, timeout: float = 180.0) -> Iterator[str]:
    """A real ``mlflow server`` on ``store_uri`` at 127.0.0.1 (this Python's MLflow), stopped on exit; yields its
    base URL."""
    port = port or free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store_uri, "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2).close()
                break
            except (urllib.error.URLError, OSError):
                if proc.poll() is not None:
                    raise RoseError(
                        f"mlflow server on {store_uri} stopped: {proc.stderr.read().decode()[-500:]}"
                    ) from None
                if time.monotonic() > deadline:
                    raise RoseError(f"mlflow server on {store_uri} did not answer within {timeout:.0f} s") from None
                time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def chromium() -> str | None:
    """The headless-capable Chromium on PATH (``chromium``, ``chromium-browser``, ``google-chrome``), or None."""
    return next((path for name in ("chromium", "chromium-browser", "google-chrome") if (path := shutil.which(name))),
                None)  # fmt: skip


def _browser(args: list[str], budget_ms: int, timeout: float) -> subprocess.CompletedProcess:
    binary = chromium()
    if binary is None:
        raise RoseError("no Chromium found: install it (Debian: apt-get install -y chromium)")
    with tempfile.TemporaryDirectory(prefix="rose-chromium-") as profile:
        flags = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--hide-scrollbars", f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}"]  # fmt: skip
        env = {**os.environ, "HOME": profile}  # Chromium writes its crash and config folders under HOME
        return subprocess.run([*flags, *args], capture_output=True, text=True, timeout=timeout, env=env)


def dump_dom(url: str, budget_ms: int = 20000, timeout: float = 180.0) -> str:
    """The page's DOM once its scripts ran (``budget_ms`` of virtual time for the React app to fetch and render)."""
    done = _browser(["--dump-dom", "--window-size=3840,2160", url], budget_ms, timeout)  # wide: every column
    if done.returncode != 0 or not done.stdout:
        raise RoseError(f"Chromium could not load {url}: {done.stderr.strip()[-300:]}")
    return done.stdout


def screenshot(url: str, path: Path, size: tuple[int, int] = (1600, 900), budget_ms: int = 20000,
               timeout: float = 180.0) -> Path:  # fmt: skip
    """A PNG of the page at ``size`` (width, height) once it rendered."""
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    done = _browser([f"--screenshot={path}", f"--window-size={size[0]},{size[1]}", url], budget_ms, timeout)
    if not path.exists():
        raise RoseError(f"Chromium made no screenshot of {url}: {done.stderr.strip()[-300:]}")
    return path


def visible_text(dom: str) -> str:
    """The text of a dumped DOM, without scripts, styles and tags (whitespace collapsed)."""
    import html
    import re

    text = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S | re.I)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", text))).strip()
