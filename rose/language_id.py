"""Language identification: the one lingua detector rose uses, for generation's target-language check and for
score's target-language share.

The detector tells apart the catalog's languages and frequent confusions of them (a close neighbour, a language
of the same script); it is built once per process (a second or two) and answers with lingua's language names
(``WELSH``), which :class:`rose.catalog.Language` carries as ``lingua``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from rose.catalog import LANGUAGES
from rose.errors import MissingDependency

# Languages the targets are told apart from, besides the catalog's own.
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
    names = dict.fromkeys((*(lang.lingua for lang in LANGUAGES.values() if lang.lingua), *CONFUSIONS, *extra))
    langs = [getattr(lingua.Language, n) for n in names if hasattr(lingua.Language, n)]
    return lingua.LanguageDetectorBuilder.from_languages(*langs).build()


def _extra(target: str) -> tuple[str, ...]:
    known = {lang.lingua for lang in LANGUAGES.values()} | set(CONFUSIONS)
    return () if not target or target in known else (target,)


def identify(texts: Sequence[str], target: str = "") -> list[str | None]:
    """lingua's name of each text's language (None when undecided); ``target`` joins the detector's languages."""
    if not texts:
        return []
    found = _detector(_extra(target)).detect_languages_in_parallel_of(list(texts))
    return [f.name if f is not None else None for f in found]


def detect(text: str) -> str | None:
    """lingua's name of ``text``'s language, or None."""
    return identify([text])[0]


def matches(target: str, texts: Sequence[str]) -> list[bool]:
    """Per text, whether it is identified as ``target`` (a lingua name such as ``WELSH``)."""
    return [found == target for found in identify(texts, target)]
