"""The building blocks of a strategy: small steps over one :class:`State`, each ``step(state, ctx) -> state``.

- :class:`LabelDescriptions`: one short English description per label (Summarized Label), generated from k
  English training examples or read from a CSV.
- :class:`Demonstrations`: k human examples per label from the target language or English.
- :class:`Generate`: ask for examples until N per label are kept or the request budget is spent.
- :class:`Revise` and :class:`LanguageCheck` wrap generation as judges of each new example (revision is a
  filter, not a rewrite); a standalone :class:`LanguageCheck` only measures the target-language share.

Reference: Anikina et al. (EMNLP 2025), section 1 of method.md.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

from rose.errors import RoseError
from rose.generate import prompts
from rose.generate.backends.base import Request, SamplingParams
from rose.generate.context import Context, request_seed
from rose.generate.parse import normalise, parse_examples_counted, within_length
from rose.human_data import columns, load_split, sample_demonstrations, truncate_words

log = logging.getLogger(__name__)

# Why a candidate line did not become an example, beside the parser's reasons (rose.generate.parse).
LENGTH = "length"  # outside the length limits
GARBLED = "garbled"  # punctuation or symbols only
DUPLICATE = "duplicate"  # the same normalised text again for the same label
CROSS_LABEL = "cross_label"  # a text written for two labels: every copy dropped
REVISION_REJECTED = "revision_rejected"  # the revision judge answered no
REVISION_UNPARSED = "revision_unparsed"  # the revision answer began with neither yes nor no
LANGUAGE = "language"  # not identified as the target language (language filter)
SURPLUS = "surplus"  # parsed after the label had its N examples

# How far past the longest example kept (max_chars) a line may run before the answer is ended (stop_long_lines):
# more than the markup the parser peels from a line ("12. ", "Example 3: ", quotes, ** **), so a line ended this way
# could not have become an example.
LINE_MARGIN = 40


@dataclass
class State:
    """Everything a strategy builds up: descriptions, demonstrations, kept and rejected examples, prompts."""

    labels: list[str]
    descriptions: dict[str, str] = field(default_factory=dict)
    demonstrations: dict[str, list[str]] = field(default_factory=dict)
    demo_pool: dict[str, list[str]] = field(default_factory=dict)
    demo_language: str | None = None
    demos_used: dict[str, int] = field(default_factory=dict)
    examples: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    prompts: dict[str, dict] = field(default_factory=dict)  # prompt hash -> what was sent
    shortfall: dict[str, int] = field(default_factory=dict)
    language_share: dict[str, float] = field(default_factory=dict)

    def kept(self) -> dict[str, int]:
        out = dict.fromkeys(self.labels, 0)
        for ex in self.examples:
            out[ex["label"]] += 1
        return out


def _remember(state: State, request: Request, kind: str, label: str) -> str:
    h = request.prompt_hash()
    if h not in state.prompts:
        state.prompts[h] = {
            "prompt_hash": h,
            "kind": kind,
            "label": label,
            "messages": request.messages,
            "prompt": request.prompt,
        }
    return h


class LabelDescriptions:
    """One description per label in the pivot language (English by default): read from ``csv`` or written by the
    model from pivot-language examples."""

    def __init__(self, csv_path: str | None = None, examples: int | None = None):
        self.csv_path = csv_path
        self.examples = examples

    def __call__(self, state: State, ctx: Context) -> State:
        path = self.csv_path or ctx.config.descriptions
        key = ctx.config.descriptions_key
        state.descriptions = read_descriptions(path, state.labels, key) if path else self._write(state, ctx)
        return state

    def check(self, ctx: Context) -> None:
        """Read what the step needs before a run starts (an input error then leaves no run behind)."""
        path = self.csv_path or ctx.config.descriptions
        if path:
            read_descriptions(path, list(ctx.task.labels), ctx.config.descriptions_key)
        else:
            self._examples(list(ctx.task.labels), ctx)

    def _examples(self, labels: list[str], ctx: Context) -> dict[str, list[str]]:
        c = ctx.config
        pivot = load_split(ctx.task, ctx.pivot, "train", c.source, **columns(c))
        chosen = sample_demonstrations(pivot, labels, self.examples or c.summary_examples, c.seed, c.demo_words)
        empty = [label for label in labels if not chosen[label]]
        if empty:
            raise RoseError(
                f"no {ctx.pivot.name} training examples for label(s) {', '.join(empty)} to summarise: "
                "pass --descriptions with a CSV of label descriptions instead"
            )
        return chosen

    def _write(self, state: State, ctx: Context) -> dict[str, str]:
        c = ctx.config
        chosen = self._examples(state.labels, ctx)
        backend = ctx.summary_backend or ctx.backend
        params = SamplingParams(c.temperature, c.top_p, c.repetition_penalty, c.summary_max_tokens)
        requests = []
        for label in state.labels:
            messages = prompts.summary_messages(ctx.task, label, chosen[label], ctx.pivot.name)
            rendered = dict(messages=messages) if ctx.chat else dict(prompt=prompts.as_completion(messages, "This"))
            req = Request(
                **rendered,
                params=params,
                seed=request_seed(c.seed, "summary", label),
                meta={"kind": "summary", "label": label},
            )
            _remember(state, req, "summary", label)
            requests.append(req)
        out = {}
        for label, answer in zip(state.labels, ctx.ask(requests, backend), strict=True):
            text = " ".join(answer.text.strip().split("\n\n")[0].split())
            if text and not ctx.chat:  # the completion prompt ends in "This": the answer continues it
                text = "This " + text
            if not text:
                ctx.stats["summary_empty"] += 1
                log.warning("empty label summary for %r: the prompt will state the label name only", label)
            out[label] = text
        return out


def read_descriptions(path: str | Path, labels: list[str], key: str = "") -> dict[str, str]:
    """Label descriptions from a CSV with columns ``description`` and ``key`` (default: the first of ``label``,
    ``intent`` and ``category`` it has)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise RoseError(f"no such descriptions file: {path}: pass a CSV with columns label,description")
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if key and rows and key not in rows[0]:
        raise RoseError(f"{path}: no column {key!r} (columns: {', '.join(rows[0])}): fix --descriptions-key")
    key = key or next((k for k in ("label", "intent", "category") if rows and k in rows[0]), None)
    if key is None or "description" not in rows[0]:
        raise RoseError(f"{path}: expected columns label,description (or name the label column: --descriptions-key)")
    found = {(r[key] or "").strip(): (r["description"] or "").strip() for r in rows}
    missing = [label for label in labels if not found.get(label)]
    if missing:
        raise RoseError(f"{path}: no description for label(s) {', '.join(missing)}")
    return {label: found[label] for label in labels}


class Demonstrations:
    """k seeded human examples per label, each cut to a word limit, from the target language or the pivot language
    (``source: pivot``; ``en`` is its older name: the pivot language, English unless ``--pivot-language`` says
    otherwise)."""

    def __init__(self, source: str = "target", k: int | None = None):
        if source not in ("target", "pivot", "en"):
            raise RoseError(f"demonstrations: source must be 'target' or 'pivot', got {source!r}")
        self.source = source
        self.k = k

    def check(self, ctx: Context) -> None:
        """Read the demonstrations before a run starts (an input error then leaves no run behind)."""
        self._load(list(ctx.task.labels), ctx)

    def _load(self, labels: list[str], ctx: Context):
        c = ctx.config
        code = ctx.language.code if self.source == "target" else ctx.pivot.code
        data = load_split(ctx.task, code, "train", c.source, **columns(c))
        k = c.demos_per_label if self.k is None else self.k
        chosen = sample_demonstrations(data, labels, k, c.seed, c.demo_words)
        empty = [label for label in labels if not chosen[label]]
        if empty and k > 0:
            raise RoseError(
                f"label(s) {', '.join(empty)} have no {code} training examples under {c.source} to "
                "show as demonstrations: use a strategy without demonstrations or other data"
            )
        return data, chosen, code

    def __call__(self, state: State, ctx: Context) -> State:
        c = ctx.config
        data, state.demonstrations, code = self._load(state.labels, ctx)
        by_label = data.by_label()
        state.demo_pool = {
            label: [truncate_words(t, c.demo_words) for t in by_label.get(label, [])] for label in state.labels
        }
        state.demo_language = code
        return state


class Generate:
    """Ask for examples of each label until ``per_label`` are kept or the request budget is spent.

    Per label, request i has its own seed; answers are parsed, length-filtered and deduplicated on normalised
    text in request order, then passed through the judges that wrap this step. Surplus candidates wait for the
    next round, so no request is made while enough unjudged examples remain.

    A text written for two labels is ambiguous: both copies are dropped (the kept one withdrawn, its label asks
    again) and counted as ``cross_label``, so no text reaches the classifier under two labels and no label keeps
    it by the accident of being asked first. Every line that does not become an example is counted by reason and
    label (:meth:`Context.drop`).
    """

    def __call__(self, state: State, ctx: Context, judges: tuple = ()) -> State:
        c = ctx.config
        per_request = max(1, c.examples_per_request)
        budget = c.max_requests_per_label or 3 * math.ceil(c.per_label / per_request) + 3
        self.line_tokens = _line_tokens(state, ctx) if c.fit_answers else 0
        self.kept = kept = {label: [] for label in state.labels}
        self.pending = pending = {label: [] for label in state.labels}
        self.claimed: dict[str, dict] = {}  # normalised text -> the candidate that holds it
        self.ambiguous: set[str] = set()  # texts written for two labels
        asked = dict.fromkeys(state.labels, 0)
        spent = dict.fromkeys(state.labels, 0.0)  # the request budget used (see request_cost)
        active = list(state.labels)
        produced = dict.fromkeys(state.labels, 0)
        while active:
            plan = self.plan(active, kept, pending, asked, spent, produced, budget, ctx)
            # the round's requests, one per label in turn, sent a batch at a time: a label that already holds
            # enough candidates asks no more (its later requests would only make surplus)
            slots = [label for turn in range(max(plan.values(), default=0)) for label in active if plan[label] > turn]
            while slots:
                requests = []
                while slots and len(requests) < max(1, c.batch_size):
                    label = slots.pop(0)
                    if len(kept[label]) + len(pending[label]) >= c.per_label:
                        ctx.stats["requests_skipped"] += 1
                        continue
                    requests.append(self.request(label, asked[label], state, ctx))
                    asked[label] += 1
                for req, answer in zip(requests, ctx.ask(requests) if requests else [], strict=True):
                    found = self.candidates(req, answer, state, ctx)
                    cost = request_cost(req, answer)
                    spent[req.meta["label"]] += cost
                    ctx.stats["answers_ended_long_line"] += cost < 1
                    produced[req.meta["label"]] += len(found)
                    pending[req.meta["label"]].extend(found)
            batch = []
            for label in active:
                take = c.per_label - len(kept[label])
                batch += pending[label][:take]
                pending[label] = pending[label][take:]
            for judge in judges:
                judge.judge([ex for ex in batch if ex["_keep"]], state, ctx)
            for ex in batch:
                if ex.pop("_keep"):
                    kept[ex["label"]].append(ex)
                else:
                    state.rejected.append(ex)
                    ctx.drop(_judged_reason(ex), ex["label"])
            ctx.show(kept=sum(map(len, kept.values())))
            active = [  # every label: one whose example was withdrawn as ambiguous asks again
                label
                for label in state.labels
                if len(kept[label]) < c.per_label and (pending[label] or spent[label] < budget)
            ]
        for label in state.labels:
            ctx.drop(SURPLUS, label, len(pending[label]))
        state.examples = [ex for label in state.labels for ex in kept[label]]
        state.shortfall = {label: c.per_label - len(kept[label]) for label in state.labels}
        for label, gap in state.shortfall.items():
            if gap:
                log.warning(
                    "label %r: %d of %d examples missing after %d requests", label, gap, c.per_label, asked[label]
                )
        return state

    @staticmethod
    def plan(active, kept, pending, asked, spent, produced, budget: int, ctx: Context) -> dict[str, int]:
        """Requests per label this round: enough for what is missing at the yield seen so far, then spare batch
        slots round-robin to the labels still short (their requests share one prompt, so they batch cheaply).

        Which examples are kept does not depend on the plan: candidates are taken in request order.
        """
        c = ctx.config
        plan = {}
        for label in active:
            short = c.per_label - len(kept[label]) - len(pending[label])
            rate = produced[label] / asked[label] if asked[label] else c.examples_per_request
            need = math.ceil(short / max(rate, 0.5)) if short > 0 else 0
            plan[label] = max(0, min(need, math.ceil(budget - spent[label])))
        spare = c.batch_size - sum(plan.values())
        short_labels = [label for label in active if plan[label] > 0]
        while spare > 0 and short_labels:
            for label in list(short_labels):
                if spare and spent[label] + plan[label] < budget:
                    plan[label] += 1
                    spare -= 1
                else:
                    short_labels.remove(label)
        return plan

    def request(self, label: str, i: int, state: State, ctx: Context) -> Request:
        c = ctx.config
        demos = state.demonstrations.get(label, [])
        if c.redraw_demos and state.demo_pool.get(label):
            pool = state.demo_pool[label]
            demos = random.Random(f"{c.seed}:{label}:{i}").sample(pool, min(len(pool), len(demos) or 0))
        rendered, used = _prompt(ctx, label, state.descriptions.get(label), tuple(demos))
        state.demos_used[label] = min(used, state.demos_used.get(label, used))
        kind = dict(messages=rendered) if ctx.chat else dict(prompt=rendered)
        params = ctx.params
        if c.stop_long_lines and ctx.backend.stops_at_lines and ctx.max_chars is not None and ctx.max_chars < 10_000:
            params = dataclasses.replace(params, line_chars=ctx.max_chars + LINE_MARGIN)
        if c.fit_answers:  # stop once the answer holds what the label still needs, or when no example fits any more
            short = c.per_label - len(getattr(self, "kept", {}).get(label, ())) - \
                len(getattr(self, "pending", {}).get(label, ()))  # fmt: skip
            want = max(1, min(c.examples_per_request, short))
            params = dataclasses.replace(params, stop_lines=want + 1, line_tokens=getattr(self, "line_tokens", 0))
        req = Request(
            **kind,
            params=params,
            seed=request_seed(c.seed, label, i),
            sample_index=i,
            meta={"kind": "generate", "label": label, "n": c.examples_per_request},
        )
        _remember(state, req, "generate", label)
        return req

    def candidates(self, req: Request, answer, state: State, ctx: Context) -> list[dict]:
        label = req.meta["label"]
        if not answer.text.strip():
            ctx.stats["empty_answers"] += 1
            log.info("empty answer to request %d of label %r (dropped)", req.sample_index, label)
        texts, dropped = parse_examples_counted(answer.text, answer.cut_off)
        for reason, n in dropped.items():
            ctx.drop(reason, label, n)
        out = []
        for text in texts:
            if not within_length(text, ctx.min_chars, ctx.max_chars):
                ctx.drop(LENGTH, label)
                continue
            key = normalise(text)
            if not key:  # punctuation only
                ctx.drop(GARBLED, label)
                continue
            if key in self.ambiguous:
                ctx.drop(CROSS_LABEL, label)
                continue
            holder = self.claimed.get(key)
            if holder is not None and holder["label"] == label:
                ctx.drop(DUPLICATE, label)
                continue
            if holder is not None:
                ctx.drop(CROSS_LABEL, label)
                self._withdraw(holder, key, state, ctx)
                continue
            ex = {
                "text": text,
                "label": label,
                "task": ctx.task.name,
                "language": ctx.language.code,
                "generator": ctx.generator,
                "strategy": ctx.strategy,
                "candidate": ctx.candidate,
                "step": "generate",
                "prompt_hash": req.prompt_hash(),
                "request_index": req.sample_index,
                "verdict": None,
                "explanation": None,
                "_keep": True,
            }
            self.claimed[key] = ex
            out.append(ex)
        return out

    def _withdraw(self, holder: dict, key: str, state: State, ctx: Context) -> None:
        """Drop the first copy of a text another label wrote too, wherever it is (waiting or kept)."""
        self.ambiguous.add(key)
        label = holder["label"]
        for where in (self.pending[label], self.kept[label]):
            if any(ex is holder for ex in where):
                where[:] = [ex for ex in where if ex is not holder]
                holder.pop("_keep", None)
                state.rejected.append(dict(holder, step="dedup"))
                ctx.drop(CROSS_LABEL, label)
                return
        # already rejected by a judge, and counted there


def request_cost(request: Request, answer) -> float:
    """What a request spends of its label's budget (``max_requests_per_label``): one request, or for an answer a
    line rule ended before its token limit (a line too long to be an example, ``stop_long_lines``) the share of the
    token limit it used, at least a quarter. So a label whose answers are cut short may ask again, up to four times
    its budget in requests, for no more tokens than its budget of full answers."""
    limit = request.params.max_new_tokens
    if answer.cut_off and request.params.line_chars and answer.n_tokens < limit:
        return max(0.25, answer.n_tokens / limit)
    return 1.0


def _line_tokens(state: State, ctx: Context) -> int:
    """Tokens of a typical example of the task: the median demonstration's (with its list number), else the
    middle of the length limits at 4 characters a token; 0 when neither is known."""
    demos = sorted(t for texts in state.demonstrations.values() for t in texts)
    if demos:
        counts = sorted(ctx.backend.count_tokens(t) for t in demos[:: max(1, len(demos) // 20)])
        return counts[len(counts) // 2] + 4
    if ctx.min_chars is not None and ctx.max_chars is not None and ctx.max_chars < 10_000:
        return (ctx.min_chars + ctx.max_chars) // 8 + 4
    return 0


def _judged_reason(ex: dict) -> str:
    if ex.get("step") == "revise":
        return REVISION_UNPARSED if ex.get("verdict") is None else REVISION_REJECTED
    return LANGUAGE


def _prompt(ctx: Context, label: str, description: str | None, demos: tuple[str, ...]) -> tuple[object, int]:
    """The generation prompt of a label, fitted to the context (memoised per label, description and demos)."""
    key = ("generate", label, description, demos)
    if key not in ctx.memo:
        if ctx.chat:

            def build(d: list[str]) -> object:
                n = ctx.config.examples_per_request
                return prompts.generation_messages(ctx.task, ctx.language, label, n, description, d)
        else:

            def build(d: list[str]) -> object:
                return prompts.completion_prompt(ctx.task, ctx.language, label, description, d)

        budget = ctx.config.context_length - ctx.config.max_new_tokens
        ctx.memo[key] = prompts.fit_demonstrations(build, list(demos), ctx.backend.count_tokens, budget)
    return ctx.memo[key]
