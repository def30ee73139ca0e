"""Steps that judge generated examples: revision by the generator, and the target-language check (lingua).

Both wrap a generation step (``Revise(Generate())``): each new candidate passes the judges before it is kept,
so rejected examples are replaced by new requests and written to their own artifact for ablations. A
:class:`LanguageCheck` with no inner step only measures the target-language share per label.

Reference: Anikina et al. (EMNLP 2025), section 1 of method.md (revision is a filter, not a rewrite; the
verdict is read from the answer's first word).
"""

from __future__ import annotations

import logging

from rose import language_id
from rose.generate import prompts
from rose.generate.backends.base import Request, SamplingParams
from rose.generate.context import Context, request_seed
from rose.generate.parse import parse_verdict
from rose.generate.steps import LANGUAGE, State
from rose.languages import Language

log = logging.getLogger(__name__)


class _Wrapper:
    def __init__(self, inner=None):
        self.inner = inner

    def __call__(self, state: State, ctx: Context, judges: tuple = ()) -> State:
        return self.inner(state, ctx, judges=(self, *judges)) if self.inner is not None else state


class Revise(_Wrapper):
    """The generator judges each example: label fit (given the label's description, as the reference does in every
    revision strategy: the summary step's, else ``--descriptions``, else the task file's), quality, target language."""

    def judge(self, items: list[dict], state: State, ctx: Context) -> None:
        c = ctx.config
        params = SamplingParams(c.temperature, c.top_p, c.repetition_penalty, c.revision_max_tokens)
        requests = []
        for ex in items:
            messages = prompts.revision_messages(
                ctx.task, ctx.language, ex["label"], ctx.description(state.descriptions, ex["label"]), ex["text"]
            )
            kind = dict(messages=messages) if ctx.chat else dict(prompt=prompts.as_completion(messages))
            requests.append(
                Request(
                    **kind,
                    params=params,
                    seed=request_seed(c.seed, "revise", ex["label"], ex["text"]),
                    meta={"kind": "revise", "label": ex["label"]},
                )
            )
        for ex, answer in zip(items, ctx.ask(requests), strict=True):
            verdict, explanation = parse_verdict(answer.text)
            ex.update(step="revise", verdict=verdict, explanation=explanation, _keep=verdict is True)
            ctx.stats["revision_judged"] += 1
            if verdict is None:
                ctx.stats["revision_unparsed"] += 1
                log.debug("unparsed revision answer %r (example dropped)", answer.text[:80])
            elif verdict:
                ctx.stats["revision_accepted"] += 1
            else:
                ctx.stats["revision_rejected"] += 1


class LanguageCheck(_Wrapper):
    """Share of examples lingua identifies as the target language; with ``filter`` it drops the others."""

    def __init__(self, inner=None, filter: bool = False):  # noqa: A002 - the YAML key
        super().__init__(inner)
        self.filter = filter

    def __call__(self, state: State, ctx: Context, judges: tuple = ()) -> State:
        if self.inner is not None:
            state = self.inner(state, ctx, judges=((self, *judges) if self.filter else judges))
        elif self.filter:
            keep = detect_target(ctx.language, [ex["text"] for ex in state.examples])
            state.rejected += [
                dict(ex, step="language_check") for ex, ok in zip(state.examples, keep, strict=True) if not ok
            ]
            ctx.stats["language_dropped"] += keep.count(False)
            for ex, ok in zip(state.examples, keep, strict=True):
                if not ok:
                    ctx.drop(LANGUAGE, ex["label"])
            state.examples = [ex for ex, ok in zip(state.examples, keep, strict=True) if ok]
            for label in state.labels:
                state.shortfall[label] = ctx.config.per_label - state.kept()[label]
        state.language_share = language_share(ctx.language, state.examples, state.labels)
        return state

    def judge(self, items: list[dict], state: State, ctx: Context) -> None:
        for ex, ok in zip(items, detect_target(ctx.language, [ex["text"] for ex in items]), strict=True):
            if not ok:
                ex.update(step="language_check", _keep=False)
                ctx.stats["language_dropped"] += 1


def language_share(language: Language, examples: list[dict], labels: list[str]) -> dict[str, float]:
    """Per label (and ``""`` for all), the share of examples identified as ``language``; empty when language ID
    is not available for it (lingua lacks the language)."""
    if not language.lingua:
        return {}
    hits = detect_target(language, [ex["text"] for ex in examples])
    out = {}
    for label in labels:
        own = [h for ex, h in zip(examples, hits, strict=True) if ex["label"] == label]
        out[label] = sum(own) / len(own) if own else 0.0
    out[""] = sum(hits) / len(hits) if hits else 0.0
    return out


def detect_target(language: Language, texts: list[str]) -> list[bool]:
    """Per text, whether rose's language detector (:mod:`rose.language_id`) identifies it as ``language``; every
    text passes when language ID is not available for the language (lingua lacks it): nothing is dropped."""
    if not language.lingua:
        if texts:
            log.warning("language ID is not available for %s (%s): no example is checked or dropped by language",
                        language.name, language.code)  # fmt: skip
        return [True] * len(texts)
    return language_id.matches(language.lingua, texts)
