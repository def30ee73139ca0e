"""Shared pytest fixtures."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def rose_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The ROSE_HOME for this session: ``$ROSE_HOME`` when set (reuses folders built there), else a fresh
    temporary one (the three offline models are then built once per session, about a minute on 2 cores)."""
    env = os.environ.get("ROSE_HOME")
    home = Path(env).expanduser().absolute() if env else tmp_path_factory.mktemp("rose_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROSE_HOME", str(home))
        yield home


@pytest.fixture(scope="session")
def rose_asset(rose_home: Path) -> Callable[[str], Path]:
    """``rose_asset("multilingual-e5-small")`` -> the ready folder of a rose asset, built once per session."""

    def get(name: str) -> Path:
        from rose.assets import fetch
        from rose.errors import MissingDependency

        with pytest.MonkeyPatch.context() as mp:  # a test module may have pointed ROSE_HOME elsewhere
            mp.setenv("ROSE_HOME", str(rose_home))
            try:
                return Path(fetch([name])[0].path)
            except MissingDependency as exc:  # the source package is not installed here
                pytest.skip(f"{name} cannot be built here: {exc}")

    return get
