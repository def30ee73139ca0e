"""Where things are: the project folder, the human data beside it by default, and what a hub id looks like.

Knows nothing of MLflow or of any stage, so every module may use it (loading data, tracking, the study file).
"""

from __future__ import annotations

import re
from pathlib import Path

SHARED_DATA = "../shared/data"  # the default human-data folder (the layout <dataset>/<lang>/<split>.jsonl)
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")


def project_dir(start: Path | None = None) -> Path:
    """The directory holding ``MLproject`` at or above ``start`` (default: the working directory), else it."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "MLproject").exists():
            return folder
    return here


def is_hub_id(text: str) -> bool:
    """Whether ``text`` has the shape of a Hugging Face hub id (``org/name``; not a relative path such as
    ``./x/y`` or ``~/x``). It says nothing of whether the id exists, or of a local path of the same shape."""
    return bool(HUB_ID.fullmatch(text)) and not text.startswith((".", "~"))
