"""Reading model answers: examples out of any list shape, revision verdicts, normalisation and length limits.

Pure functions, no model and no I/O. Models print examples one per line, as numbered or bulleted lists,
quoted, as a JSON or Python list, after a preamble ("Here are 10 sentences:") and with a last line cut off
by the token limit; every shape gives the same clean list of strings.

Reference: Anikina et al. (EMNLP 2025), section 1 of method.md (parsing; revision read from the first word,
not from "yes" anywhere in the answer as the reference code did).
"""

from __future__ import annotations

import ast
import json
import re
import unicodedata

_FENCE = re.compile(r"^```[\w-]*\s*$")
_BULLET = re.compile(r"^\s*(?:[-*•·–—>]+|\(?\d{1,3}\s*[.):\]]|\(?[a-z]\)|#+)\s+")
_LABELLED = re.compile(r"^\s*(?:example|sentence|utterance|text|sample)\s*\d*\s*[:.)-]\s+", re.I)
_PREAMBLE = re.compile(
    r"^(sure|certainly|of course|okay|ok|absolutely|here (are|is)|below (are|is)|the following|these are|"
    r"i hope|note:|let me know|i('| a)m happy|as requested)\b",
    re.I,
)
_QUOTES = "\"'“”„‟«»‹›`「」『』"
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_VERDICT = re.compile(r"^\W*([^\W_]+)", re.U)
YES = {"yes", "y", "true", "correct", "accept", "accepted", "valid"}
NO = {"no", "n", "false", "incorrect", "reject", "rejected", "invalid"}


def _strip_item(line: str) -> str:
    line = line.strip().rstrip(",").strip()
    for _ in range(3):  # "1. **"text"**" peels in layers
        before = line
        line = _BULLET.sub("", line)
        line = _LABELLED.sub("", line)
        line = line.strip().strip("*_").strip()
        if len(line) >= 2 and line[0] in _QUOTES and line[-1] in _QUOTES:
            line = line[1:-1].strip()
        line = line.rstrip(",").strip()
        if line == before:
            break
    return line


def _as_list(text: str) -> list[str] | None:
    """The items of a JSON or Python list of strings somewhere in ``text``, or None."""
    start, end = text.find("["), text.rfind("]")
    if start < 0 or end <= start:
        return None
    blob = text[start : end + 1]
    for load in (json.loads, ast.literal_eval):
        try:
            value = load(blob)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if isinstance(value, list) and value:
            items = []
            for item in value:
                if isinstance(item, dict):
                    item = next(
                        (item[k] for k in ("text", "example", "sentence", "utterance") if k in item),
                        next((v for v in item.values() if isinstance(v, str)), ""),
                    )
                if isinstance(item, str):
                    items.append(item.strip())
            return items
    return None


def parse_examples_counted(text: str, cut_off: bool = False) -> tuple[list[str], int]:
    """(examples, lines dropped as preamble, headers or a cut-off tail) from one model answer.

    ``cut_off`` says the answer hit the token limit, so its last line may be incomplete and is dropped.
    """
    text = (text or "").strip()
    if not text:
        return [], 0
    items = _as_list(text)
    if items is not None:
        return [s for s in items if s], sum(1 for s in items if not s)
    if text.lstrip().startswith("[") and "]" not in text:  # a list cut off mid-way: keep its complete strings
        found = [json.loads(f'"{m}"') if "\\" in m else m for m in _QUOTED.findall(text)]
        return [s.strip() for s in found if s.strip()], 1
    lines = [ln for ln in text.splitlines() if ln.strip() and not _FENCE.match(ln.strip())]
    dropped = 0
    if cut_off and lines:
        lines, dropped = lines[:-1], 1
    out = []
    for i, line in enumerate(lines):
        raw = line.strip()
        if raw in ("[", "]", "{", "}") or set(raw) <= set("-=*_#~ "):
            dropped += 1
            continue
        if _PREAMBLE.match(raw) or (raw.endswith(":") and (i == 0 or len(raw) < 80)):
            dropped += 1
            continue
        item = _strip_item(raw)
        if item:
            out.append(item)
        else:
            dropped += 1
    return out, dropped


def parse_examples(text: str, cut_off: bool = False) -> list[str]:
    """The examples in one model answer, in order (see :func:`parse_examples_counted`)."""
    return parse_examples_counted(text, cut_off)[0]


def parse_verdict(text: str) -> tuple[bool | None, str]:
    """(verdict, explanation) from a revision answer, read from its first word only.

    ``"No, although yes it is German"`` is a rejection; an answer whose first word is neither yes nor
    no (or an empty one) gives ``None``: counted and dropped as unparsed, never accepted.
    """
    text = (text or "").strip()
    match = _VERDICT.match(text)
    if not match:
        return None, text
    word = match.group(1).casefold()
    explanation = text[match.end() :].lstrip(" \t.,:;!-–—").strip()
    if word in YES:
        return True, explanation
    if word in NO:
        return False, explanation
    return None, text


def normalise(text: str) -> str:
    """A key for deduplication: NFKC, case-folded, punctuation removed, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(" " if unicodedata.category(c).startswith(("P", "S")) else c for c in text)
    return " ".join(text.split())


def within_length(text: str, min_chars: int | None, max_chars: int | None) -> bool:
    n = len(text)
    return (min_chars is None or n >= min_chars) and (max_chars is None or n <= max_chars)


def length_limits(texts: list[str], low: float = 2.0, high: float = 98.0, widen: float = 0.25) -> tuple[int, int]:
    """(min, max) characters from human examples: the ``low``..``high`` percentiles, widened by ``widen``.

    Replaces the study's fixed 10 to 100 characters, which cuts long SIB-200 sentences and penalises
    scripts that need fewer characters per word.
    """
    if not texts:
        return 1, 10_000
    lengths = sorted(len(t) for t in texts)

    def pct(p: float) -> float:
        k = (len(lengths) - 1) * p / 100
        lo = int(k)
        hi = min(lo + 1, len(lengths) - 1)
        return lengths[lo] + (lengths[hi] - lengths[lo]) * (k - lo)

    return max(1, int(pct(low) * (1 - widen))), int(pct(high) * (1 + widen)) + 1
