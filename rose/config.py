"""Config dataclasses <-> command-line flags, MLproject parameters and YAML, one to one.

Each field of a stage's config dataclass becomes ``--field-name``; its ``metadata["help"]`` is the help
text and ``metadata.get("short")`` an optional short flag. Lists are written comma-separated on the
command line (``--seeds 1,2,3``). Unknown YAML keys are refused with the line they are on.

Constraints live in the field metadata too and are checked by :func:`validate` wherever a config is built
(:func:`from_mapping`: the command line, the MLproject parameters, study configs) and by each stage before it
starts a run: ``min``/``max`` (inclusive), ``gt``/``lt`` (exclusive), ``choices``, ``distinct`` and
``nonempty`` (lists), ``check`` (a function of the value returning a problem or None; list items are checked
one by one). A config class may add checks across fields with a ``problems(self) -> list[str]`` method.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

from rose.errors import RoseError

_MISSING = dataclasses.MISSING


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(inner type, is_list) of a field annotation such as ``int | None`` or ``list[int]``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _base_type(args[0]) if len(args) == 1 else (str, False)
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return (args[0] if args else str), True
    return tp, False


def parse_bool(text: str | bool) -> bool:
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise RoseError(f"expected true or false, got {text!r}")


def parse_list(text: str | list, item_type: Any = str) -> list:
    """``"1,2,3"`` or ``"1-3"`` (ints) or a list -> a list of ``item_type``; ``""``/``none`` -> []."""
    if isinstance(text, (list, tuple)):
        return [convert(item, item_type) for item in text]
    text = str(text).strip()
    if text.lower() in ("", "none"):
        return []
    out = []
    for part in text.split(","):
        part = part.strip()
        if item_type is int and "-" in part[1:]:
            lo, hi = part.split("-", 1)
            out.extend(range(int(lo), int(hi) + 1))
        elif part:
            out.append(convert(part, item_type))
    return out


def convert(value: Any, tp: Any) -> Any:
    base, is_list = _base_type(tp)
    if is_list:
        return parse_list(value, base)
    if value is None or (isinstance(value, str) and value.lower() == "none" and tp is not str):
        return None
    if base is bool:
        return parse_bool(value)
    if base in (int, float):
        try:
            return base(value)
        except (TypeError, ValueError):
            raise RoseError(f"expected {'an integer' if base is int else 'a number'}, got {value!r}") from None
    if base is Path:
        return Path(value)
    return value


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """One flag per field of the dataclass ``cls``; defaults stay the dataclass's own."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("cli") is False:
            continue
        default = (
            f.default
            if f.default is not _MISSING
            else (f.default_factory() if f.default_factory is not _MISSING else None)
        )
        base, is_list = _base_type(hints[f.name])
        shown = ",".join(map(str, default)) if is_list and default else default
        help_text = f.metadata.get("help", "")
        if f.default is _MISSING and f.default_factory is _MISSING:
            help_text += " (required)"
        elif shown not in (None, "", []):
            help_text += f" (default: {shown})"
        names = [flag(f.name)] + ([f.metadata["short"]] if "short" in f.metadata else [])
        if "_" in f.name:  # `mlflow run -P per_label=5` passes undeclared parameters as --per_label
            names.append("--" + f.name)
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": help_text}
        if base is bool and not is_list:
            kwargs.update(nargs="?", const="true", metavar="BOOL")
        if "choices" in f.metadata:
            kwargs["choices"] = f.metadata["choices"]
        parser.add_argument(*names, **kwargs)


class SettingError(RoseError):
    """A setting with a value outside its constraint; ``name`` is the field (None: a check across fields)."""

    def __init__(self, message: str, name: str | None = None):
        super().__init__(message)
        self.name = name


def _label(name: str, where: str | None) -> str:
    return flag(name) if where is None else name


def _prefix(where: str | None) -> str:
    return "" if where is None else f"{where}: "


def _bounds(meta: dict) -> str:
    parts = []
    if "min" in meta:
        parts.append(f">= {meta['min']}")
    if "gt" in meta:
        parts.append(f"> {meta['gt']}")
    if "max" in meta:
        parts.append(f"<= {meta['max']}")
    if "lt" in meta:
        parts.append(f"< {meta['lt']}")
    return " and ".join(parts)


def item_problem(meta: dict, value: Any) -> str | None:
    """What is wrong with one value (a list item, or a scalar) under a field's metadata, or None.

    Problems start with their separator (" must be ...", ": unknown task ...") so they follow the setting's name.
    """
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        low = ("min" in meta and value < meta["min"]) or ("gt" in meta and value <= meta["gt"])
        high = ("max" in meta and value > meta["max"]) or ("lt" in meta and value >= meta["lt"])
        if low or high or value != value:  # NaN fails every bound
            return f" must be {_bounds(meta)}, got {value}"
    if "choices" in meta and value not in meta["choices"]:
        return f" must be one of {', '.join(map(str, meta['choices']))}, got {value!r}"
    if "check" in meta:
        problem = meta["check"](value)
        return f": {problem}" if problem else None
    return None


def field_problem(f: dataclasses.Field, value: Any) -> str | None:
    meta = f.metadata
    if isinstance(value, (list, tuple)):
        if meta.get("nonempty") and not value:
            return " needs at least one value"
        if meta.get("distinct"):
            twice = sorted({str(v) for v in value if list(value).count(v) > 1})
            if twice:
                return f" lists {', '.join(twice)} more than once: give each value once"
        for item in value:
            if problem := item_problem(meta, item):
                return problem
        return None
    if meta.get("nonempty") and value in ("", None):
        return " must not be empty"
    return item_problem(meta, value)


def validate(config: Any, where: str | None = None) -> Any:
    """Check every field of a config dataclass against its metadata, then its ``problems()`` across fields.

    Raises :class:`SettingError` naming the flag (``where`` None: the command line) or the setting and where it
    came from (``where="study.yaml: generate"``). Returns ``config``.
    """
    for f in dataclasses.fields(config):
        problem = field_problem(f, getattr(config, f.name))
        if problem:
            raise SettingError(f"{_prefix(where)}{_label(f.name, where)}{problem}", f.name)
    check = getattr(config, "problems", None)
    for problem in check() if callable(check) else []:
        raise SettingError(f"{_prefix(where)}{problem}")
    return config


def from_mapping(cls: type, values: dict[str, Any], where: str | None = None):
    """Build ``cls`` from a mapping of field names (dashes allowed) to raw values (None means default), and
    :func:`validate` it. ``where`` names the source in messages (None: the command line, settings named as flags).
    """
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in names:
            raise RoseError(f"{_prefix(where)}unknown setting {key!r}: known settings are {', '.join(sorted(names))}")
        if value is None:
            continue
        try:
            kwargs[name] = convert(value, hints[name])
        except RoseError as exc:
            raise SettingError(f"{_prefix(where)}{_label(name, where)}: {exc}", name) from None
    missing = [
        f.name for f in dataclasses.fields(cls)
        if f.default is _MISSING and f.default_factory is _MISSING and f.name not in kwargs
    ]  # fmt: skip
    if missing:
        raise RoseError(f"{_prefix(where)}missing required setting(s): {', '.join(flag(m) for m in missing)}")
    return validate(cls(**kwargs), where)


def from_args(cls: type, args: argparse.Namespace):
    names = {f.name for f in dataclasses.fields(cls)}
    return from_mapping(cls, {k: v for k, v in vars(args).items() if k in names})


def to_params(config: Any) -> dict[str, Any]:
    """A flat dict of a config for logging as MLflow params."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.metadata.get("secret"):
            continue
        out[f.name] = str(value) if isinstance(value, Path) else value
    return out


def field(default: Any = _MISSING, help: str = "", **meta: Any) -> Any:  # noqa: A002
    """A dataclass field with help text; mutable defaults become factories."""
    meta["help"] = help
    if isinstance(default, (list, dict)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=meta)
    if default is _MISSING:
        return dataclasses.field(metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def known_encoding(name: str) -> str | None:
    import codecs

    try:
        codecs.lookup(name)
    except LookupError:
        return f"{name!r} is not a text encoding Python knows: use e.g. utf-8, latin-1, cp1252 or utf-16"
    return None


def read_yaml(path: str | Path, what: str) -> tuple[Any, dict[tuple, int]]:
    """Parse a YAML file; returns the data and the line (1-based) of every mapping key and list item by its
    path in the document (``("candidates", 0)``). A missing file or bad YAML is a one-line RoseError."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise RoseError(f"no {what} at {path}: check the path")
    text = path.read_text(encoding="utf-8")
    try:
        data, root = yaml.safe_load(text), yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise RoseError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    lines: dict[tuple, int] = {}

    def walk(node: Any, at: tuple) -> None:
        lines[at] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                lines[(*at, key.value)] = key.start_mark.line + 1
                walk(value, (*at, key.value))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*at, i))

    if root is not None:
        walk(root, ())
    return data, lines
