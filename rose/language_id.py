"""Language identification: the one lingua detector rose uses, for generation's target-language check and for
score's target-language share.

The detector tells apart the study's languages and frequent confusions of them (a close neighbour, a language
of the same script), plus the target; it is built once per process (a second or two) and answers with lingua's
language names (``WELSH``), which :attr:`rose.languages.Language.lingua` gives ("" for a language lingua lacks:
then language ID is not available and nothing is filtered or measured by it).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from rose.errors import MissingDependency
from rose.languages import STUDY_LANGUAGES, lingua_name

# Languages the targets are told apart from, besides the study's own.
CONFUSIONS = (
    "ENGLISH", "FRENCH", "SPANISH", "ITALIAN", "PORTUGUESE", "DUTCH", "MALAY", "TURKISH", "CROATIAN", "ARABIC",
    "HINDI", "RUSSIAN", "CHINESE", "JAPANESE", "TAGALOG", "IRISH", "DANISH", "LAO",
)  # fmt: skip


@cache
def _detector(extra: tuple[str, ...] = ()):
    try:
        import lingua
    except ImportError:
        raise MissingDependency("lingua-language-detector", purpose="language identification") from None
    names = dict.fromkeys((*_study(), *CONFUSIONS, *extra))
    langs = [getattr(lingua.Language, n) for n in names if hasattr(lingua.Language, n)]
    return lingua.LanguageDetectorBuilder.from_languages(*langs).build()


def _study() -> tuple[str, ...]:
    return tuple(name for name in map(lingua_name, STUDY_LANGUAGES) if name)


def available(target: str) -> bool:
    """Whether language ID can tell ``target`` (a lingua name, "" for a language lingua lacks)."""
    return bool(target)


def _extra(target: str) -> tuple[str, ...]:
    known = set(_study()) | set(CONFUSIONS)
    return () if not target or target in known else (target,)


def identify(texts: Sequence[str], target: str = "") -> list[str | None]:
    """lingua's name of each text's language (None when undecided); ``target`` joins the detector's languages."""
    if not texts:
        return []
    found = _detector(_extra(target)).detect_languages_in_parallel_of(list(texts))
    return [f.name if f is not None else None for f in found]


def matches(target: str, texts: Sequence[str]) -> list[bool]:
    """Per text, whether it is identified as ``target`` (a lingua name such as ``WELSH``)."""
    return [found == target for found in identify(texts, target)]
