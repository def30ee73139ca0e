"""Languages: any ISO 639-1 or 639-3 code, with its English name and script from a maintained table.

A :class:`Language` is ``(code, name, script)`` (docs/CONTRACTS.md, "Identities", rule 3). The code is the shortest
standard form (``cym`` -> ``cy``); the English name and the usual script come from ``langcodes`` (with its
``language_data`` tables), unless given (``--language-name``, a script). rose's prompts name the language by
``name``; digests cover the code and the name. Which datasets and hub configs hold a language is the task file's
business (:mod:`rose.tasks`), never the language's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, cached_property

from rose.errors import MissingDependency, RoseError

# The eleven languages of the reference studies (Anikina et al., EMNLP 2025): the neighbours language ID tells
# a target apart from, and the languages the reference LMs' tables were written for.
STUDY_LANGUAGES = ("th", "he", "id", "sw", "de", "en", "ro", "az", "sl", "te", "cy")

_CODE = re.compile(r"^[A-Za-z]{2,3}$")


@dataclass(frozen=True)
class Language:
    code: str  # ISO 639-1 where one exists, else ISO 639-3
    name: str  # English name, used in prompts
    script: str = ""  # ISO 15924, e.g. Latn, Ethi ("" when unknown)

    @cached_property
    def lingua(self) -> str:
        """lingua's Language enum name for this language (``WELSH``), or "" when lingua does not cover it."""
        return lingua_name(self.code)

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "name": self.name, "script": self.script}


@cache
def _langcodes():
    try:
        import langcodes
    except ImportError:
        raise MissingDependency("langcodes", purpose="looking up language codes") from None
    return langcodes


@cache
def get_language(code: str, name: str | None = None, script: str | None = None) -> Language:
    """The language with ISO 639-1/639-3 ``code`` (an English name such as ``Welsh`` is accepted too).

    ``name`` and ``script`` override the table's. An unknown code is a one-line error; a code the table lacks is
    accepted when ``name`` is given.
    """
    if isinstance(code, Language):
        return code
    text = str(code).strip()
    lc = _langcodes()
    if not _CODE.match(text):
        try:
            text = lc.find(text).language  # an English name
        except (LookupError, ValueError):
            raise RoseError(f"unknown language {code!r}: give an ISO 639-1 or 639-3 code (e.g. cy, am, yor)") from None
    try:
        tag = lc.Language.get(text.lower())
    except ValueError:
        raise RoseError(f"unknown language {code!r}: give an ISO 639-1 or 639-3 code (e.g. cy, am, yor)") from None
    short = tag.language or text.lower()
    known = tag.is_valid() and _has_name(tag)
    if not known and not name:
        raise RoseError(
            f"unknown language {code!r}: the language table has no such ISO 639 code: check it, or name the "
            "language (--language-name)"
        )
    english = name.strip() if name else tag.display_name("en")
    written = script if script is not None else (_script(lc, short) if known else "")
    return Language(short, english, written)


def known_language(code: str) -> str | None:
    """A config ``check``: an ISO 639-1/639-3 code of the language table, written in its shortest form (the
    problem, or None)."""
    try:
        short = get_language(code).code
    except RoseError as exc:
        return str(exc)
    if short != code:
        return f"language {code!r}: write it {short!r} (rose names a language by its shortest ISO 639 code)"
    return None


def _has_name(tag) -> bool:
    try:
        from language_data.names import code_to_names
    except ImportError:
        return "Unknown" not in tag.display_name("en")
    return bool(code_to_names(tag.language))


def _script(lc, code: str) -> str:
    try:
        return lc.Language.get(code).maximize().script or ""
    except Exception:  # noqa: BLE001 - a language with no likely-subtags entry has no known script
        return ""


@cache
def lingua_name(code: str) -> str:
    """lingua's enum name for ISO ``code`` (``cy`` -> ``WELSH``), or "" when lingua lacks the language (or is not
    installed)."""
    try:
        import lingua
    except ImportError:
        return ""
    try:
        if len(code) == 2:
            return lingua.Language.from_iso_code_639_1(lingua.IsoCode639_1.from_str(code)).name
        return lingua.Language.from_iso_code_639_3(lingua.IsoCode639_3.from_str(code)).name
    except (ValueError, AttributeError):
        pass
    try:  # a 639-3 code of a language lingua knows by its 639-1 code, or the other way round
        alt = _langcodes().Language.get(code).to_alpha3() if len(code) == 2 else None
        if alt:
            return lingua.Language.from_iso_code_639_3(lingua.IsoCode639_3.from_str(alt)).name
    except (ValueError, AttributeError, LookupError):
        pass
    return ""
