"""The parser on raw answers real models gave to rose's prompts (tests/fixtures/raw_answers, captured by capture.py).

The expected counts were checked by reading every answer: which lines are examples (however poor), which are the
model talking about its answer (preamble, indented commentary), code, markup, or a last line the token limit cut.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from rose.generate.parse import parse_examples_counted

FIXTURES = Path(__file__).parent / "fixtures" / "raw_answers"

# per file: (answers, examples, Counter of dropped lines by reason)
EXPECTED = {
    "smollm2-135m-instruct__hf.jsonl": (
        17, 34, {"cut_off": 12, "preamble": 15, "commentary": 9, "markup": 1, "code": 5}
    ),
    # the base model continues rose's numbered list, stops at the end of a line, once drifts into web-page text
    "gemma-3-270m__hf.jsonl": (17, 45, {"cut_off": 1}),
    # llama.cpp's OpenAI-compatible server (python -m llama_cpp.server), rose's openai backend: smollm2 through chat
    # completions talks about itself ("I'm ready to help. What's your next question?", "(I am a language model
    # ...)"), all preamble; gemma through completions continues the list, then drifts into prose that is kept
    # (the parser judges form, not topic: the length filter, dedup and the classifier see those lines)
    "smollm2-135m-instruct__openai.jsonl": (17, 37, {"preamble": 14, "cut_off": 7}),
    "gemma-3-270m__openai.jsonl": (17, 60, {"cut_off": 9, "commentary": 2, "preamble": 1}),
}  # fmt: skip


def _answers(name: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / name).read_text(encoding="utf-8").splitlines()]


def _parse(answer: dict) -> tuple[list[str], Counter]:
    return parse_examples_counted(answer["text"], cut_off=answer["finish_reason"] == "length")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_line_of_a_real_answer_is_an_example_or_counted(name):
    answers = _answers(name)
    n_answers, n_examples, dropped = EXPECTED[name]
    total, examples = Counter(), 0
    for answer in answers:
        got, reasons = _parse(answer)
        lines = [ln for ln in answer["text"].splitlines() if ln.strip()]
        assert len(got) + sum(reasons.values()) == len(lines), answer["text"][:80]  # nothing lost silently
        total += reasons
        examples += len(got)
    assert (len(answers), examples, dict(total)) == (n_answers, n_examples, dropped)


def test_smollm2_answers_line_by_line():
    by_label = {(a["task"], a["label"]): a for a in _answers("smollm2-135m-instruct__hf.jsonl")}
    alarm, alarm_dropped = _parse(by_label["intent", "alarm_query"])
    assert alarm[:3] == [
        "What time your lights will be turned off tomorrow?",
        "Are all your alarms currently set today?",
        "Can you give me more information regarding that alarm?",
    ]
    assert len(alarm) == 8 and alarm_dropped == {"preamble": 1, "markup": 1, "code": 5, "cut_off": 1}
    movies, movies_dropped = _parse(by_label["intent", "recommendation_movies"])
    assert movies == ["Olly What's Playing Right Now", "Any Good Movies"]  # the "   - No punctuation" notes are not
    assert movies_dropped == {"preamble": 1, "commentary": 3, "cut_off": 1}
    sports, sports_dropped = _parse(by_label["topic", "sports"])  # finished: its last line is kept
    assert len(sports) == 3 and sports[2].startswith("Italian athletes") and sports_dropped == {"preamble": 1}
    chat, chat_dropped = _parse(by_label["intent", "cooking_recipe"])  # "I'm ready when you are! ..."
    assert chat == [] and chat_dropped == {"preamble": 1}


def test_gemma_completions_line_by_line():
    by_label = {(a["task"], a["label"]): a for a in _answers("gemma-3-270m__hf.jsonl")}
    health, dropped = _parse(by_label["topic", "health"])
    assert len(health) == 2 and health[1].startswith("He is now working") and not dropped  # "7. " peeled
    calendar, dropped = _parse(by_label["intent", "calendar_remove"])
    assert calendar[-1].startswith("make changes to an appointment that I have already scheduled") and not dropped
    assert _parse(by_label["intent", "alarm_query"])[0][1] == "is this one in your house or office?"
