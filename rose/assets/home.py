"""Where rose keeps the offline models it builds: ``$ROSE_HOME`` or the user cache dir."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def rose_home() -> Path:
    """``$ROSE_HOME``, else the platform's user cache dir + ``rose`` (``$XDG_CACHE_HOME/rose`` or ``~/.cache/rose``)."""
    if env := os.environ.get("ROSE_HOME"):
        return Path(env).expanduser().absolute()
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    elif os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "rose"
