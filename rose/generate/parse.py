"""Reading model answers: examples out of any list shape, revision verdicts, normalisation and length limits.

Pure functions, no model and no I/O. Models print examples one per line, as numbered or bulleted lists,
quoted, as a JSON or Python list, after a preamble ("Here are 10 sentences:") and with a last line cut off
by the token limit; every shape gives the same clean list of strings, and every line that is not an example is
counted by reason.

Reference: Anikina et al. (EMNLP 2025), section 1 of method.md (parsing; revision read from the first word,
not from "yes" anywhere in the answer as the reference code did).
"""

from __future__ import annotations

import ast
import json
import re
import unicodedata
from collections import Counter

_FENCE = re.compile(r"^```\s*([\w+-]*)\s*$")
_TEXT_FENCES = {"", "text", "txt", "plaintext", "plain", "markdown", "md", "json", "jsonl", "csv", "python-list"}
_BULLET = re.compile(r"^\s*(?:[-*•·–—>]+|\(?\d{1,3}\s*[.):\]]|\(?[a-z]\)|#+)\s+")
_LABELLED = re.compile(r"^\s*(?:example|sentence|utterance|text|sample)\s*\d*\s*[:.)-]\s+", re.I)
# What a model writes about its answer rather than in it: "Here are 10 sentences about travel." or "I hope these
# examples help!"; a line must name what it introduces (examples, sentences, ...) or ask for more, so that
# "Okay, set an alarm", "Sure, play the next song" and "let me know the weather" stay examples.
_ABOUT = (
    r"(here (are|is)|below (are|is)|the following|these (are|were)|i hope|i('ve| have) (written|generated|created|"
    r"provided|included|listed|given|made)|i('| a)m happy|hope (this|these)|"
    r"let me know|feel free|as requested|i can (write|generate|provide|give)|i('| a)m ready|please (go ahead|share)|"
    r"th(is|ese) (examples?|lists?|answers?) (contains?|has|have|includes?|covers?))"
)
_DELIVERABLE = (
    r"(examples?|sentences?|utterances?|texts?|samples?|queries|commands|requests|phrases|statements|questions|"
    r"instances|lines|more|further|anything else|additional|other)"
)
_META = re.compile(rf"\b{_ABOUT}\b.*\b{_DELIVERABLE}\b", re.I)
_NOTE = re.compile(r"^\W*(note|disclaimer|explanation)\s*:", re.I)
# The model speaking of itself: "(I am a language model and I will only write in English.)", "I'm ready to help."
_SELF = re.compile(
    r"\b(as an? (ai|language model)|i('m| am) an? (ai|language model|assistant)|i('m| am) (here|ready) to (help|assist))\b",
    re.I,
)
_QUOTES = "\"'“”„‟«»‹›`「」『』"
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_VERDICT = re.compile(r"^\W*([^\W_]+)", re.U)
# The one list of verdict words in rose: the revision judge's answers, and stored verdicts that score reads.
YES = frozenset({"yes", "y", "true", "correct", "accept", "accepted", "valid", "keep", "kept", "ok", "pass", "passed"})
NO = frozenset({"no", "n", "false", "incorrect", "reject", "rejected", "invalid", "drop", "dropped", "fail", "failed"})

# Why a line of an answer did not become an example (the parser's reasons; steps add their own, see steps.py).
PREAMBLE = "preamble"  # the model talking about its answer: a header ending in ':', "Here are 5 examples", a note
CUT_OFF = "cut_off"  # the last line of an answer the token limit cut
MARKUP = "markup"  # code fences, lone brackets, separator lines
EMPTY_ITEM = "empty_item"  # a bullet or number with nothing after it, an empty string in a list
NOT_TEXT = "not_text"  # a list item that is not a string (a number, a nested list)
CODE = "code"  # lines inside a fenced block of program code (```python)
COMMENTARY = "commentary"  # an indented note under a numbered or bulleted example


def _strip_item(line: str) -> str:
    line = line.strip().rstrip(",").strip()
    for _ in range(3):  # "1. **"text"**" peels in layers
        before = line
        line = _BULLET.sub("", line + " ")  # the space: a lone "2." is a bullet with nothing after it
        line = _LABELLED.sub("", line)
        line = line.strip().strip("*_").strip()
        if len(line) >= 2 and line[0] in _QUOTES and line[-1] in _QUOTES:
            line = line[1:-1].strip()
        line = line.rstrip(",").strip()
        if line == before:
            break
    return line


def _list_items(value: object) -> tuple[list[str], Counter] | None:
    """The strings of a parsed list, or None when it is no list of texts (``[3]``, ``[]``, a number)."""
    if not isinstance(value, list) or not value:
        return None
    items, dropped = [], Counter()
    for item in value:
        if isinstance(item, dict):
            item = next(
                (item[k] for k in ("text", "example", "sentence", "utterance") if k in item),
                next((v for v in item.values() if isinstance(v, str)), None),
            )
        if isinstance(item, str):
            if item.strip():
                items.append(item.strip())
            else:
                dropped[EMPTY_ITEM] += 1
        else:
            dropped[NOT_TEXT] += 1
    return (items, dropped) if items else None


def _as_list(lines: list[str]) -> tuple[list[str], Counter] | None:
    """A JSON or Python list of strings printed on lines of its own (its ``[`` opens a line, its ``]`` closes one).

    Brackets inside a line ("1. Prices rose by [3] percent") are text, not a list. Lines before and after the
    list are the model talking about it (counted as preamble).
    """
    starts = [i for i, ln in enumerate(lines) if ln.lstrip().startswith("[")]
    ends = [i for i, ln in enumerate(lines) if ln.rstrip().rstrip(",;.").endswith("]")]
    if not starts or not ends or ends[-1] < starts[0]:
        return None
    first, last = starts[0], ends[-1]
    blob = "\n".join(lines[first : last + 1]).strip().rstrip(",;.")
    for load in (json.loads, ast.literal_eval):
        try:
            found = _list_items(load(blob))
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if found is not None:
            items, dropped = found
            dropped[PREAMBLE] += first + len(lines) - 1 - last
            return items, dropped
    return None


def _cut_list(lines: list[str]) -> tuple[list[str], Counter] | None:
    """The complete strings of a list the token limit cut before its ``]``."""
    starts = [i for i, ln in enumerate(lines) if ln.lstrip().startswith("[")]
    if not starts or any("]" in ln for ln in lines[starts[0] :]):
        return None
    body = "\n".join(lines[starts[0] :])
    found = [json.loads(f'"{m}"') if "\\" in m else m for m in _QUOTED.findall(body)]
    items = [s.strip() for s in found if s.strip()]
    if not items:
        return None
    return items, Counter({CUT_OFF: 1, PREAMBLE: starts[0], EMPTY_ITEM: len(found) - len(items)})


def about_answer(text: str) -> bool:
    """Whether a line (or the start of one) speaks about the answer rather than being an example of it: "Here
    are 10 sentences about travel", a note, the model speaking of itself (see :func:`is_preamble`)."""
    return any(bool(p.search(text)) for p in (_META, _NOTE, _SELF))


def is_preamble(line: str) -> bool:
    """Whether a line is the model talking about its answer (a header, an introduction, a closing remark).

    The reference dropped the first line of every answer as a preamble; that loses a real example whenever a
    model starts straight with one ("Okay, wake me up at seven" is a MASSIVE utterance). rose drops a line
    that introduces a list (it ends with ':'), that speaks of the examples themselves ("Here are 5 sentences
    about travel.", "I hope these examples help!") or that is a note.
    """
    bare = line.strip().strip("*_#").strip()
    return bare.endswith(":") or about_answer(bare)


def parse_examples_counted(text: str, cut_off: bool = False) -> tuple[list[str], Counter]:
    """(examples, Counter of reasons) from one model answer: every line that is not an example is counted once.

    ``cut_off`` says the answer hit the token limit, so its last line may be incomplete and is dropped. The
    reasons are :data:`PREAMBLE`, :data:`COMMENTARY`, :data:`CUT_OFF`, :data:`MARKUP`, :data:`CODE`,
    :data:`EMPTY_ITEM` and :data:`NOT_TEXT`.
    """
    text = (text or "").strip()
    if not text:
        return [], Counter()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    fences = sum(1 for ln in lines if _FENCE.match(ln.strip()))
    lines = [ln for ln in lines if not _FENCE.match(ln.strip())]
    found = _as_list(lines) or _cut_list(lines)
    if found is not None:
        items, dropped = found
        dropped[MARKUP] += fences
        return items, +dropped
    dropped = Counter()
    raw_lines = [ln for ln in text.splitlines() if ln.strip()]
    if cut_off and raw_lines:
        raw_lines = raw_lines[:-1]
        dropped[CUT_OFF] += 1
    out = []
    in_code = False
    item_indent: int | None = None  # indentation of the last numbered or bulleted example
    for line in raw_lines:
        raw = line.strip()
        fence = _FENCE.match(raw)
        if fence:
            in_code = not in_code and fence.group(1).lower() not in _TEXT_FENCES
            dropped[MARKUP] += 1
            continue
        indent = len(line) - len(line.lstrip())
        if in_code:
            dropped[CODE] += 1
        elif raw in ("[", "]", "{", "}") or set(raw) <= set("-=*_#~ "):
            dropped[MARKUP] += 1
        elif item_indent is not None and indent > item_indent:
            dropped[COMMENTARY] += 1  # an indented note under an example ("   - This sentence uses ...")
        elif is_preamble(raw):
            dropped[PREAMBLE] += 1
            item_indent = None  # a header: the lines under it may be examples
        elif item := _strip_item(raw):
            out.append(item)
            item_indent = indent if _BULLET.match(raw + " ") else None
        else:
            dropped[EMPTY_ITEM] += 1
    return out, +dropped


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
