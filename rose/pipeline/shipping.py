"""File inputs that reach workers by their content, never by the driver's paths.

A study names files and folders on the driver's disk: imported datasets (``data:``), descriptions files, the human
data folder (``source:``, demonstrations and the human splits), a separate human test folder. A worker on another
node cannot read them. Before anything runs, the driver packs each input it names (a folder: only the files a case
reads, i.e. the human splits of the study's languages and its pivot languages) into a tar archive, puts it once into
Ray's object store and sends the workers its content digest and object reference. A worker unpacks an archive once per node into
``$ROSE_HOME/shipped/<digest>/`` and runs its units on the unpacked copy (:func:`unpack`, :func:`rewrite`).

The local executor needs none of this: its workers share the driver's disk.
"""

from __future__ import annotations

import io
import logging
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rose.errors import RoseError
from rose.generated_data import HUMAN_PREFIX
from rose.pipeline.plan import Unit

log = logging.getLogger(__name__)

SHIPPED_DIR = "shipped"
PATH_KEYS = {"generate": ("source", "descriptions", "data")}  # settings that name a file or a folder


@dataclass(frozen=True)
class Shipped:
    """One packed input: the driver's path (as the units name it), its content digest, the archive's object ref."""

    path: str
    digest: str
    ref: Any
    is_dir: bool


def named_paths(units: list[Unit]) -> set[str]:
    """Every local path the units name (settings and ``human:`` references) that exists on this disk."""
    paths: set[str] = set()
    for unit in units:
        values = [unit.settings.get(k) for k in PATH_KEYS.get(unit.stage, ())]
        values += [unit.data, *(v for v in unit.inputs.values() if isinstance(v, str))]
        values += [unit.settings.get("human_test", "")]
        for value in values:
            if not isinstance(value, str) or not value:
                continue
            value = value[len(HUMAN_PREFIX) :] if value.startswith(HUMAN_PREFIX) else value
            if value not in ("auto", "hub", "hf") and Path(value).expanduser().exists():
                paths.add(value)
    return paths


def _members(path: Path, cases: list[tuple[str, str]], pivots: set[str]) -> list[Path]:
    """The files of ``path`` to ship: a file itself; of a folder, the human splits the study's cases read (in
    their language and the pivot languages)."""
    if path.is_file():
        return [path]
    from rose.human_data import SPLITS, _folder_file
    from rose.languages import get_language
    from rose.tasks import get_task

    files: set[Path] = set()
    for task, language in cases:
        for code in {language, *pivots}:
            for split in SPLITS:
                try:
                    files.add(_folder_file(path, get_task(task), get_language(code), split))
                except RoseError:
                    continue
    return sorted(files) or sorted(p for p in path.rglob("*") if p.is_file())


def pack(path: str, cases: list[tuple[str, str]], pivots: set[str] = frozenset({"en"})) -> tuple[str, bytes, bool]:
    """(content digest, tar archive, is a folder) of a file or of the files of a folder a study reads; the digest
    is :mod:`rose.content`'s (a folder's: the relative paths and bytes of the files shipped)."""
    from rose.content import file_digest, files_digest

    root = Path(path).expanduser().resolve()
    members = _members(root, cases, set(pivots))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for file in members:
            tar.add(file, arcname=file.name if root.is_file() else str(file.relative_to(root)), recursive=False)
    digest = files_digest(root, members) if root.is_dir() else file_digest(root)
    return digest, buffer.getvalue(), root.is_dir()


def ship(units: list[Unit], cases: list[tuple[str, str]], put) -> dict[str, Shipped]:
    """Pack every path the units name and ``put`` each archive once (``ray.put``); ``{driver path: Shipped}``."""
    out = {}
    pivots = {"en", *(str(u.settings.get("pivot_language") or "en") for u in units if u.stage == "generate")}
    for path in sorted(named_paths(units)):
        digest, blob, is_dir = pack(path, cases, pivots)
        out[path] = Shipped(path, digest, put(blob), is_dir)
        log.info("shipping %s by content (%s, %.1f MB)", path, digest[:19], len(blob) / 1e6)
    return out


def unpack(shipped: dict[str, Shipped], home: Path, get) -> dict[str, str]:
    """Unpack each archive once on this node (``get``: ``ray.get``); ``{driver path: local path}``."""
    out = {}
    for path, item in shipped.items():
        folder = home / SHIPPED_DIR / item.digest.split(":", 1)[1][:32]
        if not (folder / ".complete").exists():
            folder.mkdir(parents=True, exist_ok=True)
            with tarfile.open(fileobj=io.BytesIO(get(item.ref)), mode="r") as tar:
                tar.extractall(folder, filter="data")
            (folder / ".complete").write_text(item.digest)
        if item.is_dir:
            out[path] = str(folder)
        else:
            out[path] = str(folder / Path(path).name)
    return out


def rewrite(units: list[Unit], local: dict[str, str]) -> None:
    """Point the units' settings and references at the local copies (in place)."""

    def swap(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if value.startswith(HUMAN_PREFIX) and value[len(HUMAN_PREFIX) :] in local:
            return HUMAN_PREFIX + local[value[len(HUMAN_PREFIX) :]]
        return local.get(value, value)

    for unit in units:
        unit.settings = {k: swap(v) for k, v in unit.settings.items()}
        unit.data = swap(unit.data)
        unit.inputs = {k: swap(v) for k, v in unit.inputs.items()}
