"""Building prompts: generation (chat or completion), revision and label summaries; fitting them to context.

The wording lives in ``templates/*.txt``; this module only fills them in. Parsing answers is
:mod:`rose.generate.parse`.

Reference: Anikina et al. (EMNLP 2025), section 1 of method.md (one chat per label: a system message saying the
model writes representative examples of a class in the named language; a user message asking for N examples
of the label, with its meaning under SL and demonstrations under Demos, one per line).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

from rose.generate.backends.base import Message
from rose.languages import Language
from rose.tasks import Task

TEMPLATES = Path(__file__).with_name("templates")


@cache
def template(name: str) -> str:
    return (TEMPLATES / f"{name}.txt").read_text(encoding="utf-8").strip("\n")


def generation_messages(
    task: Task, language: Language, label: str, n: int, description: str | None, demos: list[str]
) -> list[Message]:
    """System + user chat asking for ``n`` examples of ``label`` in ``language``."""
    shown_label = task.display(label)
    meaning = f'The category "{shown_label}" means: {description.strip()}\n' if description else ""
    shown = ""
    if demos:
        shown = f'\nExamples of the category "{shown_label}":\n' + "\n".join(f"- {d}" for d in demos) + "\n"
    values = dict(
        language=language.name,
        task_description=task.description,
        n=n,
        noun=task.example_noun,
        plural=task.plural,
        label=shown_label,
        meaning=meaning,
        demos=shown,
    )
    return [
        {"role": "system", "content": template("system").format(**values)},
        {"role": "user", "content": template("user").format(**values)},
    ]


def completion_prompt(task: Task, language: Language, label: str, description: str | None, demos: list[str]) -> str:
    """A numbered list for base models (no chat template) that the model continues."""
    listed = "".join(f"{i}. {d}\n" for i, d in enumerate(demos, 1))
    meaning = f" The category means: {description.strip()}" if description else ""
    return (
        template("completion")
        .format(
            language=language.name,
            noun=task.example_noun,
            plural=task.plural,
            label=task.display(label),
            task_description=task.description,
            meaning=meaning,
            demos=listed,
            next=len(demos) + 1,
        )
        .rstrip()
    )


def revision_messages(task: Task, language: Language, label: str, description: str | None, text: str) -> list[Message]:
    """Ask whether ``text`` fits the label, is complete and grammatical, and is in the language; Yes/No first."""
    meaning = f"\nMeaning of the category: {description.strip()}" if description else ""
    content = template("revise").format(
        language=language.name,
        task_description=task.description,
        label=task.display(label),
        meaning=meaning,
        text=text,
        noun=task.example_noun,
        plural=task.plural,
    )
    return [{"role": "user", "content": content}]


def summary_messages(task: Task, label: str, examples: list[str], pivot: str = "English") -> list[Message]:
    """Ask for a short description of ``label`` in the ``pivot`` language (English by default) from examples in it
    (the SL building block)."""
    content = template("summary").format(
        n=len(examples),
        pivot=pivot,
        label=task.display(label),
        task_description=task.description,
        examples="\n".join(f"- {e}" for e in examples),
    )
    return [{"role": "user", "content": content}]


def as_completion(messages: list[Message], answer_prefix: str = "Answer:") -> str:
    """A chat turned into a plain prompt for a base model."""
    return "\n\n".join(m["content"] for m in messages) + f"\n\n{answer_prefix}"


def fit_demonstrations(
    build: Callable[[list[str]], object], demos: list[str], count_tokens: Callable[[object], int], budget: int
) -> tuple[object, int]:
    """(prompt, demonstrations used): drop demonstrations from the end, one at a time, until the prompt fits.

    ``budget`` is the context length minus the new tokens; with no demonstration left the prompt is used as is.
    """
    n = len(demos)
    while True:
        rendered = build(demos[:n])
        if n == 0 or count_tokens(rendered) <= budget:
            return rendered, n
        n -= 1
