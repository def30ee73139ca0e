"""What identifies a generate (or import) unit's inputs: their content, never their paths (design rule 1 of
docs/CONTRACTS.md, "Identities").

:func:`by_content` replaces, in a mapping of generate or import settings, every setting that names a file (the
descriptions CSV, a strategy YAML, a label map file, an imported data file) by the content digest of that file, and
the human data source by the digests of the splits a generate run reads from it (the language's and the pivot
language's training splits: demonstrations, summaries and length limits come from them). A step option that names a file
(``label_descriptions: {csv_path: ...}``) is replaced the same way. The paths stay in the run's params, each with
``<name>_sha256`` beside it (:func:`file_params`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rose.content import file_digest
from rose.errors import RoseError

FILE_SETTINGS = ("descriptions", "strategy", "label_map", "data")
STEP_FILE_OPTIONS = ("csv_path",)
SOURCE_SPLITS = ("train",)


def local_file(value: Any) -> Path | None:
    """The local file or folder a setting names, or None (empty, a preset name, a hub id, an inline label map)."""
    if not isinstance(value, str) or not value.strip() or "\n" in value:
        return None
    path = Path(value.strip()).expanduser()
    try:
        return path if path.exists() else None
    except OSError:  # a name too long for a path (an inline label map)
        return None


def _named_file(name: str, value: Any) -> Path | None:
    if name == "strategy":  # a preset's name is a preset, even beside a file of that name
        from rose.generate.strategies import PRESETS

        if value in PRESETS:
            return None
    return local_file(value)


def source_identity(source: str, task: str, language: str, pivot: str = "en") -> dict[str, str]:
    """``{"<split>/<lang>": content digest}`` of the human splits a generate run reads from ``source``: the
    language's and the pivot language's (English by default) training splits (where they exist)."""
    from rose.human_data import split_digest

    out = {}
    for code in dict.fromkeys((language, pivot)):
        for split in SOURCE_SPLITS:
            try:
                out[f"{split}/{code}"] = split_digest(task, code, split, source)
            except RoseError:  # not there: a run that needed it would have failed before its digest
                continue
    return out


def by_content(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` with files named by their content digests (see the module docstring)."""
    out = dict(settings)
    for name in FILE_SETTINGS:
        if (path := _named_file(name, out.get(name))) is not None:
            out[name] = file_digest(path)
    if out.get("source") and out.get("task") and out.get("language"):
        out["source"] = source_identity(str(out["source"]), str(out["task"]), str(out["language"]),
                                        str(out.get("pivot_language") or "en"))  # fmt: skip
    return out


def steps_by_content(specs: list) -> list:
    """Strategy step specs ``(name, options)`` with file-valued options replaced by their content digests."""
    out = []
    for name, options in specs:
        options = dict(options or {})
        for key in STEP_FILE_OPTIONS:
            if (path := local_file(options.get(key))) is not None:
                options[key] = file_digest(path)
        out.append((name, options))
    return out


def file_params(settings: dict[str, Any]) -> dict[str, str]:
    """``<name>_sha256`` params for every setting that names a local file (logged beside the path)."""
    return {f"{name}_sha256": file_digest(path) for name in FILE_SETTINGS
            if (path := _named_file(name, settings.get(name))) is not None}  # fmt: skip
