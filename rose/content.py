"""Identities by content: the digest of a file's (or a folder's) bytes, rose's only sha256 cache.

``file_digest(path)`` is ``"sha256:<hex>"`` of a file's bytes; for a folder, of its files' sorted relative paths
and bytes (each file's own digest, in path order), so a folder copied elsewhere keeps its digest and a file
edited in place gets a new one. ``files_digest(root, files)`` digests only some files of a folder (a model's
weight files). Each file is read once per process while it is unchanged: the cache is keyed by its real path,
size, modification and status-change times (ns) and inode; no write, rename or copy over a file leaves its
status-change time alone, not even one that puts the modification time back. A file of 16 MB or more (model
weights: 0.4 to 0.8 s a GB) also keeps its digest under ``$ROSE_HOME/digests`` (keyed by its device as well), so
a later process reads it again only once it changed. Design rule 1 of
docs/CONTRACTS.md ("Identities").
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

PREFIX = "sha256:"
_BLOCK = 1 << 22
_CACHE: dict[tuple[str, int, int, int, int], str] = {}  # (realpath, size, mtime_ns, inode, ctime_ns) -> hex digest


_DISK_MIN = 16 << 20  # files at least this big keep their digest on disk as well


def sha256_hex(path: str | os.PathLike) -> str:
    """The sha256 hex digest of one file's bytes (read once per process while its size, mtime and inode hold;
    a large file's digest is kept on disk too, see the module docstring)."""
    real = os.path.realpath(path)
    st = os.stat(real)
    key = (real, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
    found = _CACHE.get(key)
    if found is None:
        entry = _disk_entry((*key, st.st_dev)) if st.st_size >= _DISK_MIN else None
        found = _read_entry(entry) if entry else None
        if found is None:
            h = hashlib.sha256()
            with open(real, "rb") as fh:
                while block := fh.read(_BLOCK):
                    h.update(block)
            found = h.hexdigest()
            if entry:
                _write_entry(entry, found)
        _CACHE[key] = found
    return found


def _disk_entry(key: tuple) -> Path:
    from rose.assets.home import rose_home

    name = hashlib.sha256(repr(key).encode()).hexdigest()[:40]
    return rose_home() / "digests" / name[:2] / name


def _read_entry(entry: Path) -> str | None:
    try:
        text = entry.read_text().strip()
    except OSError:
        return None
    return text if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else None


def _write_entry(entry: Path, digest: str) -> None:
    """Best effort: a cache folder that cannot be written only costs the next process a read of the file."""
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_name(f"{entry.name}.{os.getpid()}.tmp")
        tmp.write_text(digest)
        tmp.replace(entry)
    except OSError:
        pass


def files_digest(root: str | os.PathLike, files: Iterable[str | os.PathLike]) -> str:
    """``sha256:<hex>`` over ``files`` of the folder ``root``: their relative paths (POSIX) and bytes, in path
    order. Where the folder lives does not enter the digest."""
    root = Path(root)
    rel = sorted((Path(f).relative_to(root).as_posix() if Path(f).is_absolute() else Path(f).as_posix(), Path(f))
                 for f in files)  # fmt: skip
    h = hashlib.sha256()
    for name, path in rel:
        full = path if path.is_absolute() else root / path
        h.update(f"{name}\0{sha256_hex(full)}\n".encode())
    return PREFIX + h.hexdigest()


def file_digest(path: str | os.PathLike) -> str:
    """``sha256:<hex>`` of a file's bytes, or of a folder's files (relative paths and bytes; hidden files and
    ``__pycache__`` left out). A missing path is a :class:`FileNotFoundError`."""
    path = Path(path)
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path))]
        return files_digest(path, files)
    return PREFIX + sha256_hex(path)


def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") or part == "__pycache__" for part in rel.parts)


def short(digest: str, n: int = 16) -> str:
    """The first ``n`` hex digits of a digest (``sha256:`` dropped), for names and tags."""
    return digest.removeprefix(PREFIX)[:n]
