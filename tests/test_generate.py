"""rose generate on the scripted fake backend: parsing, prompts of every preset, steps, errors, tracking."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from fakes import DEMOS, LANGUAGE, LANGUAGE_NAME, SHARED_DATA, fake_generate, generate_config, tracking_db

from rose.errors import RoseError
from rose.generate import parse, steps
from rose.generate.backends import FakeBackend, Request, SamplingParams
from rose.generate.backends.base import Completion
from rose.generate.cache import CompletionCache
from rose.generate.run import run_strategy
from rose.generate.strategies import PRESETS, get_strategy
from rose.naming import metric_key
from rose.tasks import get_task

needs_shared = pytest.mark.skipif(not SHARED_DATA.exists(), reason="needs ../shared/data (Welsh, intent)")


def run(tmp_path: Path, backend=None, **overrides):
    config = generate_config(tmp_path, **overrides)
    backend = backend or FakeBackend()
    cache = CompletionCache(tmp_path / "cache" / "completions.sqlite")
    try:
        state, ctx = run_strategy(config, backend, cache)
    finally:
        cache.close()
    return state, ctx, backend


def user_prompts(backend: FakeBackend, kind: str = "generate") -> list[str]:
    return [r.messages[-1]["content"] if r.messages else r.prompt for r in backend.calls if r.meta["kind"] == kind]


# --- parsing ---------------------------------------------------------------------------------------------------
SHAPES = {
    "lines": "Alpha one\nBeta two\nGamma three",
    "numbered": "1. Alpha one\n2) Beta two\n(3) Gamma three",
    "bulleted": "- Alpha one\n* Beta two\n• Gamma three",
    "quoted": "\"Alpha one\"\n'Beta two'\n“Gamma three”",
    "json": '["Alpha one", "Beta two", "Gamma three"]',
    "json_fenced": '```json\n[\n  "Alpha one",\n  "Beta two",\n  "Gamma three"\n]\n```',
    "python": "['Alpha one', 'Beta two', \"Gamma three\"]",
    "json_objects": '[{"text": "Alpha one"}, {"text": "Beta two"}, {"sentence": "Gamma three"}]',
    "preamble": "Sure! Here are 3 sentences:\n\n1. Alpha one\n2. Beta two\n3. Gamma three",
    "foreign_preamble": "Dyma dair brawddeg:\n1. Alpha one\n2. Beta two\n3. Gamma three",
    "markdown": '1. **Alpha one**\n2. **"Beta two"**\n3. *Gamma three*',
    "labelled": "Example 1: Alpha one\nExample 2: Beta two\nSentence 3: Gamma three",
    "quoted_list_lines": '"Alpha one",\n"Beta two",\n"Gamma three"',
}


@pytest.mark.parametrize("shape", SHAPES)
def test_parse_every_shape(shape):
    assert parse.parse_examples(SHAPES[shape]) == ["Alpha one", "Beta two", "Gamma three"]


def test_parse_cut_off_answers():
    assert parse.parse_examples("1. Alpha one\n2. Beta two\n3. Gamma th", cut_off=True) == ["Alpha one", "Beta two"]
    assert parse.parse_examples('["Alpha one", "Beta two", "Gamma th') == ["Alpha one", "Beta two"]
    assert parse.parse_examples_counted("Here are some:\n1. A\n2. B", cut_off=True) == (
        ["A"],
        {"preamble": 1, "cut_off": 1},
    )


@pytest.mark.parametrize(
    ("answer", "examples", "dropped"),
    [
        # brackets inside a line are text, not a JSON list
        ("1. Prices rose by [3] percent in May.\n2. The index [SPX] fell.", ["Prices rose by [3] percent in May.",
         "The index [SPX] fell."], {}),
        ("[Name] wants a ticket to Paris [tomorrow]\nBook a train", ["[Name] wants a ticket to Paris [tomorrow]",
         "Book a train"], {}),
        ("[3]\nWake me up at six", ["[3]", "Wake me up at six"], {}),
        # MASSIVE utterances that start like a preamble are examples
        ("Okay, wake me up at seven\nSure, turn the volume down\nOf course, delete my meeting", ["Okay, wake me up at "
         "seven", "Sure, turn the volume down", "Of course, delete my meeting"], {}),
        ("1. ok google what time is it\n2. Absolutely no alarms tomorrow", ["ok google what time is it",
         "Absolutely no alarms tomorrow"], {}),
        ("let me know the weather in Paris\nhere is my recipe question: how long do I boil eggs",
         ["let me know the weather in Paris", "here is my recipe question: how long do I boil eggs"], {}),
        # what is preamble: a header ending in ':', a line about the examples, a closing remark, a note
        ("Sure! Here are 3 examples of weather queries.\n1. Will it rain\n2. Is it cold\n**Examples:**\n"
         "3. Any snow\nI hope these examples help!\nNote: they are short.", ["Will it rain", "Is it cold", "Any snow"],
         {"preamble": 4}),
        ('Here is a JSON list:\n```json\n["Will it rain", "", 3, "Is it cold"]\n```\nLet me know if you need more.',
         ["Will it rain", "Is it cold"], {"preamble": 2, "markup": 2, "empty_item": 1, "not_text": 1}),
        ("1. Will it rain\n2.\n---\n- \n3. Is it cold", ["Will it rain", "Is it cold"], {"empty_item": 1, "markup": 2}),
        # an indented note under an example is commentary; items under a header are examples; code is code
        ("1. Will it rain\n   - This one asks about rain.\n2. Is it cold\n```python\nprint('x')\n```\n```\nAny snow\n```",
         ["Will it rain", "Is it cold", "Any snow"], {"commentary": 1, "code": 1, "markup": 4}),
        ("1. Weather:\n   - Will it rain\n   - Is it cold", ["Will it rain", "Is it cold"], {"preamble": 1}),
    ],
)  # fmt: skip
def test_parse_counts_every_line_that_is_not_an_example(answer, examples, dropped):
    got, reasons = parse.parse_examples_counted(answer)
    assert got == examples and reasons == dropped


@pytest.mark.parametrize("text", ["", "   ", "\n\n"])
def test_parse_empty(text):
    assert parse.parse_examples(text) == []


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [("Yes, it fits.", True), ("yes", True), ("**Yes** - a good sentence", True), ("YES. It is Welsh.", True),
     ("No, although yes, it is in Welsh.", False), ("No. yes yes yes", False), ("Nope, off topic", None),
     ("The answer is yes.", None), ("", None), ("!!!", None), ("Yesterday it rained", None)],
)  # fmt: skip
def test_verdict_from_first_word_only(answer, verdict):
    got, explanation = parse.parse_verdict(answer)
    assert got is verdict
    if answer.startswith("No, although"):
        assert explanation == "although yes, it is in Welsh."


def test_normalise_and_length_limits():
    assert parse.normalise("  Hello,   WORLD! ") == parse.normalise("hello world") == "hello world"
    assert parse.normalise("Straße") == parse.normalise("STRASSE")
    lo, hi = parse.length_limits(["x" * n for n in range(20, 301)])
    assert lo < 25 and hi > 300  # widened beyond the 2nd..98th percentile
    assert parse.within_length("abc", 2, 5) and not parse.within_length("a", 2, 5)


# --- requests and cache ----------------------------------------------------------------------------------------
def test_request_key_covers_what_determines_the_answer():
    base = Request(messages=[{"role": "user", "content": "hi"}], seed=1, sample_index=0)
    variants = [
        Request(messages=[{"role": "user", "content": "hi!"}], seed=1),
        Request(messages=[{"role": "user", "content": "hi"}], seed=2),
        Request(messages=[{"role": "user", "content": "hi"}], seed=1, sample_index=1),
        Request(messages=[{"role": "user", "content": "hi"}], seed=1, params=SamplingParams(temperature=0.5)),
        Request(prompt="hi", seed=1),
    ]
    keys = {base.key("hf", "m")} | {v.key("hf", "m") for v in variants}
    assert len(keys) == 6 and base.key("hf", "m") != base.key("openai", "m") != base.key("hf", "n")
    assert Request(messages=[{"role": "user", "content": "hi"}], seed=1, meta={"x": 1}).key("hf", "m") == base.key(
        "hf", "m"
    )


def test_cache_survives_reopening(tmp_path):
    from rose.generate.backends import Completion

    cache = CompletionCache(tmp_path / "c.sqlite")
    cache.put_many({"a": Completion("x", 3, "length")})
    cache.close()
    again = CompletionCache(tmp_path / "c.sqlite")
    got = again.get_many(["a", "b"])
    assert list(got) == ["a"] and got["a"].text == "x" and got["a"].cut_off and got["a"].cached


def test_a_slow_fake_model_waits_while_its_hold_file_exists(tmp_path, monkeypatch):
    import threading
    import time

    from rose.generate.backends import get_backend

    hold = tmp_path / "hold"
    hold.touch()
    monkeypatch.setenv("ROSE_FAKE_HOLD", str(hold))
    request = Request(messages=[{"role": "user", "content": "hi"}], seed=1)
    quick = get_backend("fake", generate_config(tmp_path), "fake-a")  # no delay: never held
    started = time.monotonic()
    quick.generate([request])
    assert time.monotonic() - started < 0.5
    slow = get_backend("fake", generate_config(tmp_path), "fake-b@0.01s")
    threading.Timer(1.0, hold.unlink).start()
    started = time.monotonic()
    assert slow.generate([request])[0].text  # answered once the file is gone
    assert time.monotonic() - started >= 1.0


# --- strategies and prompts ------------------------------------------------------------------------------------
def test_unknown_strategy_is_a_clear_error(tmp_path):
    with pytest.raises(RoseError, match="unknown strategy 'target_demo'.*target_demos"):
        get_strategy("target_demo")


def test_yaml_strategy_and_its_errors(tmp_path):
    good = tmp_path / "mine.yaml"
    good.write_text("name: mine\nsteps:\n  - demonstrations: {source: en, k: 2}\n  - generate\n  - revise: {}\n")
    strategy = get_strategy(str(good))
    assert strategy.name == "mine" and strategy.uses_revision
    steps = strategy.build()
    assert type(steps[0]).__name__ == "Demonstrations" and type(steps[1]).__name__ == "Revise"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsteps:\n  - generate: {}\n  - rewrite: {}\n")
    with pytest.raises(RoseError, match=r"bad.yaml:4: unknown step 'rewrite'"):
        get_strategy(str(bad))
    worse = tmp_path / "worse.yaml"
    worse.write_text("steps:\n  - demonstrations: {source: fr}\n")
    with pytest.raises(RoseError, match=r"worse.yaml:2: .*'target' or 'pivot'"):
        get_strategy(str(worse))
    with pytest.raises(RoseError, match="after a 'generate'"):
        _strategy(tmp_path, "steps:\n  - revise: {}\n  - generate: {}\n")


def _strategy(tmp_path, text):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return get_strategy(str(path)).build()


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_builds_its_prompts(tmp_path, preset):
    from rose.tasks import get_task

    descriptions = SHARED_DATA / "label_descriptions" / "sib200_llama3-70b.csv"
    if not descriptions.exists():
        descriptions = tmp_path / "descriptions.csv"
        rows = "".join(f"{lab},This category covers {lab}.\n" for lab in get_task("topic").labels)
        descriptions.write_text("label,description\n" + rows, encoding="utf-8")
    state, ctx, backend = run(tmp_path, strategy=preset, per_label=3, descriptions=str(descriptions))
    assert state.kept() == dict.fromkeys(state.labels, 3)
    prompt = user_prompts(backend)[0]
    system = next(r.messages[0]["content"] for r in backend.calls if r.meta["kind"] == "generate")
    assert LANGUAGE_NAME in system and LANGUAGE_NAME in prompt and 'category "science/technology"' in prompt
    cy_demo, en_demo = state.demonstrations.get("science/technology", [""])[0], ""
    assert ("means:" in prompt) == ("sl" in preset.split("_"))
    assert ("Examples of the category" in prompt) == ("demos" in preset)
    if "target_demos" in preset:
        assert state.demo_language == LANGUAGE and cy_demo and cy_demo[:40] in prompt
    if "english_demos" in preset:
        en_demo = state.demonstrations["science/technology"][0]
        assert state.demo_language == "en" and en_demo[:40] in prompt
    assert bool(user_prompts(backend, "revise")) == ("revision" in preset)
    assert all(ex["step"] == ("revise" if "revision" in preset else "generate") for ex in state.examples)
    assert user_prompts(backend, "summary") == []  # the file's descriptions, not the generator's
    meaning = (  # the shared data's published descriptions, else the file written above
        "This intent involves describing or providing information about geographical locations"
        if descriptions.parent.name == "label_descriptions"
        else "This category covers geography."
    )
    for revise in (r for r in backend.calls if r.meta["kind"] == "revise"):  # every revision strategy
        if revise.meta["label"] == "geography":
            assert meaning in revise.messages[-1]["content"]


@needs_shared
@pytest.mark.parametrize(
    ("strategy", "descriptions", "source", "meaning"),
    [
        ("target_demos_revision", "", "task", "places, countries, landscapes"),
        ("english_demos_revision", "file", "file:descriptions.csv", "Mountains and rivers, from the file."),
        ("target_demos_sl_revision", "", "generator", "This category covers texts about geography."),
        ("target_demos_sl_revision", "file", "file:descriptions.csv", "Mountains and rivers, from the file."),
        ("target_demos", "file", "none", None),
    ],
)
def test_the_revision_judge_is_told_what_the_label_means(tmp_path, strategy, descriptions, source, meaning):
    from rose.tasks import get_task

    path = tmp_path / "descriptions.csv"
    rows = {label: f"About {label}." for label in get_task("topic").labels} | {
        "geography": "Mountains and rivers, from the file."
    }
    path.write_text("intent,description\n" + "".join(f'{k},"{v}"\n' for k, v in rows.items()))
    config = generate_config(tmp_path, strategy=strategy, descriptions=str(path) if descriptions else "")
    assert get_strategy(strategy).descriptions_source(config) == source
    state, ctx, backend = run(tmp_path, strategy=strategy, per_label=2, descriptions=config.descriptions)
    judged = [r.messages[-1]["content"] for r in backend.calls if r.meta == {"kind": "revise", "label": "geography"}]
    assert bool(judged) == (meaning is not None) and all(meaning in prompt for prompt in judged)
    assert bool(user_prompts(backend, "summary")) == (source == "generator")


def test_a_descriptions_file_missing_a_label_is_a_one_line_error(tmp_path, monkeypatch):
    path = tmp_path / "descriptions.csv"
    path.write_text('intent,description\ntravel,"About travel."\nsports,""\n')
    for strategy in ("zero_shot", "target_demos_revision", "sl"):  # even a strategy that uses no description
        with pytest.raises(RoseError, match=r"descriptions.csv: no description for label\(s\) science/technology, "
                           r"politics, sports, health") as err:  # fmt: skip
            fake_generate(tmp_path, monkeypatch, strategy=strategy, descriptions=str(path))
        assert "\n" not in str(err.value)


def test_summaries_are_generated_from_english_examples_and_cached(tmp_path):
    state, ctx, backend = run(tmp_path, strategy="sl", per_label=2)
    summaries = user_prompts(backend, "summary")
    assert len(summaries) == 7 and all(s.count("\n- ") == DEMOS for s in summaries)
    assert state.descriptions["travel"].startswith("This category covers")
    assert state.descriptions["travel"] in user_prompts(backend)[1] or any(
        state.descriptions["travel"] in p for p in user_prompts(backend)
    )
    _, ctx2, backend2 = run(tmp_path, strategy="sl", per_label=2)  # same cache: nothing asked again
    assert backend2.calls == [] and ctx2.stats["requests_cached"] == ctx2.stats["requests"] > 0


def test_an_empty_summary_of_a_base_model_is_empty_not_this(tmp_path):
    """A base model's summary is prompted to continue "This ..."; an empty answer stays empty (counted, the prompt
    then states the label name only), never the bare "This " passing as a summary."""

    def answer(request):
        label = request.meta["label"]
        return "  \n\n" if request.meta["kind"] == "summary" else f"1. one {label} text\n2. two {label} texts"

    state, ctx, _ = run(tmp_path, FakeBackend(chat=False, script=answer), strategy="sl", per_label=2)
    assert set(state.descriptions.values()) == {""}
    assert ctx.stats["summary_empty"] == len(state.labels)
    kept, _, _ = run(tmp_path / "b", FakeBackend(chat=False, script=lambda r: "covers trains." if
                                                 r.meta["kind"] == "summary" else "1. a text"), strategy="sl",
                     per_label=1)  # fmt: skip
    assert set(kept.descriptions.values()) == {"This covers trains."}


def test_base_models_get_a_completion_prompt_that_continues_the_list(tmp_path):
    state, ctx, backend = run(
        tmp_path,
        FakeBackend(chat=False, script=lambda r: f"continues here\n5. another {r.meta['label']}\n6. cut"),
        per_label=2,
        demos_per_label=3,
        min_chars=1,
    )
    prompt = backend.calls[0].prompt
    assert backend.calls[0].messages is None and prompt.endswith("\n4.")
    assert "1. " in prompt and "3. " in prompt and LANGUAGE_NAME in prompt
    # "continues here" and "cut" were written for every label: ambiguous, so no label keeps them
    assert [(e["label"], e["text"]) for e in state.examples] == [(lab, f"another {lab}") for lab in state.labels]
    withdrawn = [(r["label"], r["text"]) for r in state.rejected if r["step"] == "dedup"]
    assert withdrawn == [("science/technology", "continues here"), ("science/technology", "cut")]
    assert all(ctx.dropped["cross_label", lab] >= 2 for lab in state.labels)


def test_demonstrations_are_dropped_to_fit_the_context(tmp_path):
    context = 500 if LANGUAGE == "cy" else 450  # Welsh demonstrations take more tokens than English ones
    state, ctx, backend = run(tmp_path, per_label=2, context_length=context, max_new_tokens=300)
    used = state.demos_used
    assert all(0 <= n < DEMOS for n in used.values()) and set(used) == set(state.labels)
    for request in backend.calls:
        assert backend.count_tokens(request.messages) <= context - 300 or used[request.meta["label"]] == 0
    _, _, full = run(tmp_path / "b", per_label=2)
    assert user_prompts(full)[0].count("\n- ") == DEMOS


def test_redrawn_demonstrations_differ_per_request(tmp_path):
    state, ctx, backend = run(tmp_path, per_label=10, examples_per_request=2, redraw_demos=True, demos_per_label=3)
    prompts = [p for p, r in zip(user_prompts(backend), backend.calls, strict=True) if r.meta["label"] == "travel"]
    assert len(prompts) >= 2 and len(set(prompts)) > 1


def test_label_without_demonstrations_is_a_clear_error(tmp_path):
    folder = tmp_path / "data" / "sib200" / LANGUAGE
    folder.mkdir(parents=True)
    rows = [{"text": f"Brawddeg am deithio rhif {i}.", "label": "travel"} for i in range(5)]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(RoseError, match=rf"label\(s\) science/technology, politics.* no {LANGUAGE} training examples"):
        run(tmp_path, source=str(tmp_path / "data"), min_chars=1, max_chars=500)


# --- the generation loop ---------------------------------------------------------------------------------------
def test_dedup_in_stable_order_and_shortfall_when_budget_is_spent(tmp_path):
    def answer(request):
        label = request.meta["label"]
        return f"1. The same {label} again.\n2. the same  {label} again!\n3. Another {label} here."

    state, ctx, backend = run(tmp_path, FakeBackend(script=answer), per_label=4, max_requests_per_label=3, min_chars=5)
    by_label = {lab: [e["text"] for e in state.examples if e["label"] == lab] for lab in state.labels}
    assert by_label["travel"] == ["The same travel again.", "Another travel here."]
    assert state.shortfall == dict.fromkeys(state.labels, 2)
    assert ctx.stats["duplicates_dropped"] == 7 * (1 + 3 * 2) == sum(ctx.dropped[k] for k in ctx.dropped)
    assert ctx.dropped["duplicate", "travel"] == 7 and ctx.stats["cross_label_dropped"] == 0
    assert len([r for r in backend.calls if r.meta["label"] == "travel"]) == 3


def test_a_label_with_enough_candidates_asks_no_more_in_its_round(tmp_path):
    def answer(request):  # more than asked: the first answer of a label fills it
        label, i = request.meta["label"], request.sample_index
        return "\n".join(f"{k + 1}. Sentence {k} about {label} from request {i}." for k in range(10))

    state, ctx, backend = run(tmp_path, FakeBackend(script=answer), per_label=8, examples_per_request=4,
                              batch_size=7, max_requests_per_label=4, min_chars=5)  # fmt: skip
    # the plan asks two per label (8 at 4 an answer); each label's first answer already holds 10 candidates
    assert [r.sample_index for r in backend.calls] == [0] * 7
    assert ctx.stats["requests_skipped"] == 7 and state.shortfall == dict.fromkeys(state.labels, 0)
    by_label = {lab: [e["text"] for e in state.examples if e["label"] == lab] for lab in state.labels}
    assert by_label["travel"] == [f"Sentence {k} about travel from request 0." for k in range(8)]
    assert ctx.dropped["surplus", "travel"] == 2


@needs_shared
def test_a_text_written_for_two_labels_is_dropped_from_both(tmp_path):
    def write(request):
        label, i = request.meta["label"], request.sample_index
        if label == "travel":  # garbled first, then the text science/technology already kept, then its own
            return ["!!!", "Shared text about laboratories", "Trains to Cardiff run hourly"][i]
        if label == "science/technology":
            return ["Shared text about laboratories", "New telescope images released", "A faster chip"][i]
        return f"A sentence for {label} number {i}"

    state, ctx, backend = run(
        tmp_path, FakeBackend(script=write), per_label=1, examples_per_request=1, batch_size=7,
        max_requests_per_label=3, min_chars=1,
    )  # fmt: skip
    kept = {e["label"]: e["text"] for e in state.examples}
    assert kept["science/technology"] == "New telescope images released"  # its kept copy withdrawn: asked again
    assert kept["travel"] == "Trains to Cardiff run hourly" and state.shortfall == dict.fromkeys(state.labels, 0)
    assert [(r["label"], r["text"], r["step"]) for r in state.rejected] == [
        ("science/technology", "Shared text about laboratories", "dedup")
    ]
    asked = [r.sample_index for r in backend.calls if r.meta["label"] == "science/technology"]
    assert asked == [0, 1, 2]  # round 3 fills its spare batch slots with science/technology's requests
    assert ctx.dropped == {("cross_label", "science/technology"): 1, ("cross_label", "travel"): 1,
                           ("garbled", "travel"): 1, ("surplus", "science/technology"): 1}  # fmt: skip


@needs_shared
def test_every_line_of_every_answer_is_kept_or_counted(tmp_path):
    from rose.generate.backends.fake import default_answer

    state, ctx, backend = run(tmp_path, strategy="target_demos_revision", per_label=6, examples_per_request=4)
    lines = Counter()
    for request in backend.calls:
        if request.meta["kind"] == "generate":
            lines[request.meta["label"]] += sum(1 for ln in default_answer(request).splitlines() if ln.strip())
    dropped = Counter()
    for (_, label), n in ctx.dropped.items():
        dropped[label] += n
    assert {lab: state.kept()[lab] + dropped[lab] for lab in state.labels} == dict(lines)
    reasons = {reason for reason, _ in ctx.dropped}
    assert {"duplicate", "revision_rejected", "surplus"} <= reasons  # the fake model repeats itself, is judged


def test_loop_stops_when_enough_are_kept(tmp_path):
    state, ctx, backend = run(tmp_path, per_label=12, examples_per_request=5)
    assert state.shortfall == dict.fromkeys(state.labels, 0)
    assert all(n == 12 for n in state.kept().values())
    per_label = len(backend.calls) / 7
    assert 3 <= per_label <= 5  # 12 needs three requests of 5, one more when duplicates were dropped


@pytest.mark.parametrize(("answer", "counter"), [("", "empty_answers"), ("%%%%\n....\n!!!", "parse_dropped")])
def test_empty_or_garbled_answers_are_counted_drops(tmp_path, answer, counter):
    state, ctx, _ = run(tmp_path, FakeBackend(script=answer), per_label=2, max_requests_per_label=2, min_chars=1)
    assert state.examples == [] and state.shortfall == dict.fromkeys(state.labels, 2)
    assert ctx.stats[counter] >= 7 * 2


def test_revision_rejects_from_first_word_and_keeps_the_rejected(tmp_path):
    def revise(request):
        text = request.messages[0]["content"]
        return "No, although yes it is Welsh." if "rejectme" in text else "Yes. Fine."

    def write(request):
        i, label = request.sample_index, request.meta["label"]
        return f"1. keep this sentence {label} {i}\n2. rejectme sentence {label} {i}\n3. ¿¿¿\n"

    backend = FakeBackend(script={"generate": write, "revise": revise, "summary": "This category is a test."})
    state, ctx, _ = run(tmp_path, backend, strategy="target_demos_revision", per_label=3, min_chars=5)
    travel_requests = sum(1 for r in backend.calls if r.meta == {"kind": "generate", "label": "travel", "n": 5})
    assert all("rejectme" not in e["text"] and e["verdict"] is True for e in state.examples)
    assert state.rejected and all(
        r["verdict"] is False and r["explanation"].startswith("although") for r in state.rejected
    )
    assert ctx.stats["revision_rejected"] == len(state.rejected) == ctx.dropped["revision_rejected", "travel"] * 7
    assert ctx.dropped["length", "travel"] == travel_requests > 0  # "¿¿¿" in each answer, under 5 characters
    garbled = FakeBackend(script={"generate": write, "revise": "Maybe."})
    state, ctx, _ = run(
        tmp_path / "g", garbled, strategy="target_demos_revision", per_label=1, max_requests_per_label=2, min_chars=5
    )
    assert state.examples == [] and ctx.stats["revision_unparsed"] == ctx.stats["revision_judged"] > 0


@needs_shared
def test_language_check_measures_and_filters(tmp_path):
    from rose.human_data import load_split

    welsh = load_split("topic", "cy", "train", SHARED_DATA).texts[:200]
    english = load_split("topic", "en", "train", SHARED_DATA).texts[:200]
    labels = get_task("topic").labels

    def write(request):  # other texts for every label and request
        i = (labels.index(request.meta["label"]) * 25 + request.sample_index) % 200
        return f"1. {welsh[i]}\n2. {english[i]}"

    state, ctx, _ = run(tmp_path, FakeBackend(script=write), per_label=4, examples_per_request=2, max_chars=1000)
    assert 0.3 <= state.language_share[""] <= 0.7
    state, ctx, _ = run(
        tmp_path, FakeBackend(script=write), per_label=4, examples_per_request=2, max_chars=1000, language_filter=True
    )
    assert state.language_share[""] == 1.0 and ctx.stats["language_dropped"] >= 7
    assert all(r["step"] == "language_check" for r in state.rejected)


def test_same_seed_same_dataset_other_seed_other_dataset(tmp_path):
    a, _, _ = run(tmp_path / "a", per_label=6)
    b, _, _ = run(tmp_path / "b", per_label=6)
    c, _, _ = run(tmp_path / "c", per_label=6, seed=1)
    assert [e["text"] for e in a.examples] == [e["text"] for e in b.examples] != [e["text"] for e in c.examples]


# --- tracking and the command line -----------------------------------------------------------------------------
def test_generate_is_tracked_by_the_run_schema(tmp_path, monkeypatch):
    import mlflow

    result = fake_generate(tmp_path, monkeypatch, strategy="target_demos_revision", per_label=4)
    run_ = mlflow.get_run(result.run_id)
    tags, metrics, params = run_.data.tags, run_.data.metrics, run_.data.params
    assert tags["rose.stage"] == "generate" and tags["rose.candidate"] == "fake-lm__target_demos_revision"
    assert tags["rose.backend"] == "fake" and tags["rose.generator"] == "fake-lm" and tags["rose.digest"]
    assert tags["rose.descriptions"] == "task"  # a revision judge with no summary step: the task file's
    assert (
        metrics[metric_key("kept", label="science/technology")] == 4
        and metrics["kept_total"] == 28
        and metrics["shortfall_total"] == 0
    )
    for key in (
        "duplicates_dropped",
        "parse_dropped",
        "length_dropped",
        "revision_acceptance",
        "revision_rejected",
        "target_language_share",
        "target_language_share/travel",
        "tokens_generated",
        "tokens_per_second",
        "wall_time_s",
        "requests",
        "cross_label_dropped",
        "dropped_total",
    ):
        assert key in metrics, key
    by_reason = {k: v for k, v in metrics.items() if k.startswith("dropped/") and k.count("/") == 1}
    by_label = {k: v for k, v in metrics.items() if k.startswith("dropped/") and k.count("/") == 2}
    assert by_reason and sum(by_reason.values()) == sum(by_label.values()) == metrics["dropped_total"] > 0
    assert metrics["dropped/revision_rejected"] == metrics["revision_rejected"]
    assert params["temperature"] == "0.4" and params["strategy_name"] == "target_demos_revision"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(result.run_id, "dataset")}
    assert {
        f"dataset/{n}"
        for n in (
            "data.jsonl",
            "data.parquet",
            "rejected.jsonl",
            "demonstrations.json",
            "label_descriptions.csv",
            "prompts.jsonl",
        )
    } <= artifacts
    inputs = run_.inputs.dataset_inputs
    assert inputs and inputs[0].dataset.name == result.candidate and inputs[0].dataset.digest
    rows = [json.loads(line) for line in result.dataset_path.read_text().splitlines()]
    assert len(rows) == 28 and {"label", "generator", "strategy", "step", "prompt_hash", "verdict"} <= set(rows[0])
    import pandas as pd

    assert len(pd.read_parquet(result.dataset_path.with_suffix(".parquet"))) == 28
    again = fake_generate(tmp_path, monkeypatch, strategy="target_demos_revision", per_label=4)
    assert again.reused and again.run_id == result.run_id and again.kept == result.kept


@needs_shared
def test_cli_runs_on_the_fake_backend(tmp_path, monkeypatch, capsys):
    from rose.cli import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_db(tmp_path))
    monkeypatch.chdir(tmp_path)
    code = main(
        [
            "generate",
            "--task",
            "intent",
            "--language",
            "sw",
            "--generator",
            "fake-lm",
            "--backend",
            "fake",
            "--strategy",
            "zero_shot",
            "--per-label",
            "2",
            "--source",
            str(SHARED_DATA),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "run id:" in out and "alarm_query: 2 kept" in out
    assert (tmp_path / ".rose" / "cache" / "completions.sqlite").exists()
    assert (
        main(
            [
                "generate",
                "--task",
                "intent",
                "--language",
                "sw",
                "--generator",
                "x",
                "--strategy",
                "nope",
                "--backend",
                "fake",
            ]
        )
        == 2
    )
    assert "unknown strategy 'nope'" in capsys.readouterr().err


def test_vllm_parameters_map_without_vllm():
    from rose.generate.backends.vllm import engine_args, sampling_params_to_vllm

    got = sampling_params_to_vllm(SamplingParams(), seed=7)
    assert got == {"temperature": 0.4, "top_p": 0.9, "repetition_penalty": 1.2, "max_tokens": 512, "seed": 7, "n": 1}
    assert engine_args("m", 4096)["enable_prefix_caching"] is True


def test_vllm_tensor_parallel_size_is_passed_through():
    from rose.generate.backends import get_backend
    from rose.generate.backends.vllm import engine_args
    from rose.generate.config import GenerateConfig

    assert engine_args("m", 4096)["tensor_parallel_size"] == 1
    assert engine_args("m", 4096, tensor_parallel_size=4)["tensor_parallel_size"] == 4
    with pytest.raises(RoseError, match="tensor_parallel_size"):
        engine_args("m", 4096, tensor_parallel_size=0)
    config = GenerateConfig(task="topic", language="cy", generator="org/big-70b", backend="vllm",
                            tensor_parallel_size=4)  # fmt: skip
    backend = get_backend("vllm", config)  # built, not loaded: vLLM is only imported by its worker
    assert backend.tensor_parallel_size == 4


class _LineStopBackend(FakeBackend):
    """Answers one example, then a line that never ends: cut where it runs past ``line_chars`` (as llamacpp does)."""

    stops_at_lines = True

    def __init__(self):
        def answer(request):
            limit = request.params.line_chars
            if not limit:
                return _full(request)
            head, _, tail = _endless(request).partition("\n")
            cut = head + "\n" + tail[: limit + 1]
            return Completion(cut, n_tokens=len(cut.split()), finish_reason="length")

        super().__init__(script=answer)


def test_an_answer_ended_at_a_long_line_spends_its_share_of_the_budget(tmp_path):
    settings = dict(per_label=4, examples_per_request=4, max_requests_per_label=2, min_chars=5, max_chars=60,
                    max_new_tokens=400)  # fmt: skip
    state, ctx, backend = run(tmp_path, _LineStopBackend(), **settings)
    assert {r.params.line_chars for r in backend.calls} == {60 + steps.LINE_MARGIN}
    # each answer gives one example and stops after ~17 of its 400 tokens: a quarter of a request each
    assert state.shortfall == dict.fromkeys(state.labels, 0)
    assert len([r for r in backend.calls if r.meta["label"] == "travel"]) == 4
    assert ctx.dropped["cut_off", "travel"] == 4  # the long line is dropped as cut off
    assert ctx.stats["answers_ended_long_line"] == 7 * 4
    # the same answers from a backend that cannot stop at a line (or with the stop off): two full requests a label
    for backend, extra in ((_LineStopBackend(), {"stop_long_lines": False}), (FakeBackend(script=_full), {})):
        state, _, backend = run(tmp_path / type(backend).__name__ / str(extra), backend, **settings, **extra)
        assert {r.params.line_chars for r in backend.calls} == {0}
        assert state.shortfall == dict.fromkeys(state.labels, 2)


def _endless(request) -> str:
    label, i = request.meta["label"], request.sample_index
    return f"1. A sentence about {label} from request {i}.\n2. " + "and on " * 300


def _full(request):
    return Completion(_endless(request), n_tokens=request.params.max_new_tokens, finish_reason="length")


def test_request_cost_counts_a_line_cut_answer_by_its_tokens():
    params = SamplingParams(max_new_tokens=200, line_chars=100)
    ask = Request(prompt="x", params=params)
    assert steps.request_cost(ask, Completion("a", n_tokens=100, finish_reason="length")) == 0.5
    assert steps.request_cost(ask, Completion("a", n_tokens=10, finish_reason="length")) == 0.25  # at least 1/4
    assert steps.request_cost(ask, Completion("a", n_tokens=200, finish_reason="length")) == 1.0  # the token limit
    assert steps.request_cost(ask, Completion("a", n_tokens=50, finish_reason="stop")) == 1.0
    plain = Request(prompt="x", params=SamplingParams(max_new_tokens=200))
    assert steps.request_cost(plain, Completion("a", n_tokens=50, finish_reason="length")) == 1.0
    assert "line_chars" not in plain.params.to_dict() and ask.key("b", "m") != plain.key("b", "m")
