"""The llamacpp backend: the choice of backend (fast), then the real GGUF offline models through llama.cpp (slow)."""

from __future__ import annotations

import importlib.util
import sys

import pytest
from fakes import SHARED_DATA, generate_config, tracking_db

from rose.errors import MissingDependency, RoseError
from rose.generate import backends
from rose.generate.backends import Request, SamplingParams, get_backend, resolve_backend
from rose.generate.backends.llamacpp import LlamaCppBackend, gguf_file

HAS_LLAMACPP = importlib.util.find_spec("llama_cpp") is not None
needs_llamacpp = pytest.mark.skipif(not HAS_LLAMACPP, reason="llama-cpp-python is not installed")


def test_missing_library_is_a_one_line_error_naming_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp now raises ImportError
    with pytest.raises(MissingDependency) as exc:
        LlamaCppBackend("smollm2-135m-instruct").load()
    message = str(exc.value)
    assert "\n" not in message and "llama-cpp-python is not installed" in message
    assert "pip install 'rose[llamacpp]'" in message


def test_passive_openmp_waits_only_on_a_busy_machine(monkeypatch):
    from rose.generate.backends import llamacpp

    monkeypatch.setattr(llamacpp.os, "cpu_count", lambda: 2)
    samples = iter([(1000, 2000), (1190, 2200)])  # 190 of 200 jiffies idle: 0.1 core busy
    monkeypatch.setattr(llamacpp, "_cpu_times", lambda: next(samples))
    assert not llamacpp.machine_busy(window=0)  # idle: OpenMP's default waits, 2.8x faster here
    samples = iter([(1000, 2000), (1090, 2200)])  # 90 of 200 idle: 1.1 cores busy with other work
    monkeypatch.setattr(llamacpp, "_cpu_times", lambda: next(samples))
    assert llamacpp.machine_busy(window=0)  # spinning threads would crawl
    monkeypatch.setattr(llamacpp, "_cpu_times", lambda: None)  # no /proc/stat: the load average decides
    monkeypatch.setattr(llamacpp, "default_threads", lambda: 2)
    monkeypatch.setattr(llamacpp.os, "getloadavg", lambda: (2.5, 1.0, 1.0))
    assert llamacpp.machine_busy(window=0)


def test_auto_picks_llamacpp_for_gguf_models_only_when_installed(monkeypatch, tmp_path):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "config.json").write_text("{}")
    monkeypatch.setattr(backends, "llamacpp_installed", lambda: True)
    assert resolve_backend("auto", "smollm2-135m-instruct") == "llamacpp"
    assert resolve_backend("auto", "gemma-3-270m") == "llamacpp"
    assert resolve_backend("auto", str(gguf)) == "llamacpp"
    assert resolve_backend("auto", str(tmp_path / "folder")) == "hf"  # a transformers folder
    assert resolve_backend("auto", "org/some-model") == "hf"
    assert resolve_backend("auto", "multilingual-e5-small") == "hf"  # not a GGUF causal LM
    assert resolve_backend("hf", str(gguf)) == "hf"  # a named backend is kept
    monkeypatch.setattr(backends, "llamacpp_installed", lambda: False)
    assert resolve_backend("auto", "smollm2-135m-instruct") == "hf"


def test_get_backend_builds_llamacpp_from_the_config_without_loading(tmp_path, monkeypatch):
    monkeypatch.setattr(backends, "llamacpp_installed", lambda: True)
    config = generate_config(tmp_path, backend="llamacpp", generator="gemma-3-270m", batch_size=5)
    backend = get_backend(config.backend, config)
    assert isinstance(backend, LlamaCppBackend) and backend.parallel == 5 and backend._ctx is None
    assert isinstance(get_backend("auto", config), LlamaCppBackend)


def test_a_model_without_gguf_is_a_clear_error(tmp_path):
    with pytest.raises(RoseError, match="needs a GGUF file"):
        gguf_file("org/some-model")
    with pytest.raises(RoseError, match="needs a GGUF file"):
        gguf_file(str(tmp_path))  # a folder without a .gguf


def test_auto_is_resolved_before_the_run_digest(tmp_path, monkeypatch):
    """A study with backend auto names the backend that really runs in its unit digest and settings."""
    from rose.pipeline.study import Candidate, Study, generate_settings

    study = Study(
        path="study.yaml",
        experiment="e",
        source="auto",
        candidates=[Candidate("smollm2-135m-instruct", "zero_shot")],
        generate={"backend": "auto"},
    )
    cand = study.candidates[0]
    monkeypatch.setattr(backends, "llamacpp_installed", lambda: True)
    assert generate_settings(study, "topic", "en", cand)["backend"] == "llamacpp"
    monkeypatch.setattr(backends, "llamacpp_installed", lambda: False)
    assert generate_settings(study, "topic", "en", cand)["backend"] == "hf"


def test_gguf_weights_choose_the_file_decoded(tmp_path, monkeypatch):
    """auto: the measured choice for an offline model (f16 for smollm2, the file itself for gemma), the file
    itself for any other GGUF; an unknown choice is a one-line error naming the valid ones."""
    from rose.generate.backends import llamacpp

    made = []
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    assert llamacpp.decode_file(gguf, "auto", "gemma-3-270m") == gguf
    assert llamacpp.decode_file(gguf, "auto", str(gguf)) == gguf
    assert llamacpp.decode_file(gguf, "as-is", "smollm2-135m-instruct") == gguf
    monkeypatch.setattr(llamacpp, "_f16_copy", lambda path: made.append(path) or tmp_path / "copy.gguf")
    assert llamacpp.decode_file(gguf, "auto", "smollm2-135m-instruct") == tmp_path / "copy.gguf"
    assert llamacpp.decode_file(gguf, "f16", str(gguf)) == tmp_path / "copy.gguf" and made == [gguf, gguf]
    with pytest.raises(RoseError, match="unknown gguf_weights 'q8'.*auto, as-is, f16"):
        llamacpp.decode_file(gguf, "q8")
    with pytest.raises(RoseError, match="unknown gguf_weights"):
        LlamaCppBackend("smollm2-135m-instruct", weights="fp16")
    config = generate_config(tmp_path, backend="llamacpp", generator="smollm2-135m-instruct", gguf_weights="as-is")
    assert get_backend(config.backend, config).weights == "as-is"


@needs_llamacpp
def test_a_file_llama_cpp_cannot_copy_is_a_one_line_error_and_leaves_nothing(tmp_path, monkeypatch):
    from rose.generate.backends.llamacpp import decode_file

    monkeypatch.setenv("ROSE_HOME", str(tmp_path / "home"))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF not a model")
    with pytest.raises(RoseError, match="could not store bad.gguf with 16-bit weights") as exc:
        decode_file(bad, "f16")
    assert "\n" not in str(exc.value) and list((tmp_path / "home" / "converted").iterdir()) == []


@needs_llamacpp
def test_the_f16_copy_holds_the_same_weights(rose_home):
    """smollm2's Q4_1 file and its 16-bit copy: every weight equal to within float16 rounding (2^-11 relative),
    made once (a second call reuses the file)."""
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFReader
    from gguf.quants import dequantize

    from rose.assets import gguf_path
    from rose.generate.backends.llamacpp import decode_file

    try:
        source = gguf_path("smollm2-135m-instruct")
    except MissingDependency as exc:
        pytest.skip(str(exc))
    copy = decode_file(source, "f16", "smollm2-135m-instruct")
    assert copy.parent == rose_home / "converted" and copy.suffix == ".gguf"
    stamp = copy.stat().st_mtime_ns
    assert decode_file(source, "auto", "smollm2-135m-instruct") == copy and copy.stat().st_mtime_ns == stamp
    old = {t.name: t for t in GGUFReader(source).tensors}
    new = {t.name: t for t in GGUFReader(copy).tensors}
    assert old.keys() == new.keys()
    kinds = {t.tensor_type for t in old.values()}
    assert GGMLQuantizationType.Q4_1 in kinds and GGMLQuantizationType.Q8_0 in kinds  # what is re-stored
    checked = set()
    for name, t in old.items():
        if t.tensor_type == GGMLQuantizationType.F32 or t.tensor_type in checked and not name.endswith("attn_q.weight"):
            continue
        checked.add(t.tensor_type)
        assert new[name].tensor_type == GGMLQuantizationType.F16, name
        a = dequantize(t.data, t.tensor_type).astype(np.float32).ravel()
        b = new[name].data.astype(np.float32).ravel()
        assert a.shape == b.shape and np.all(np.abs(a - b) <= np.abs(a) * 2.0**-11 + 2.0**-24), name


# ----------------------------------------------------------------------------- the real models (slow)
@pytest.fixture(scope="module")
def smollm2(rose_home):
    if not HAS_LLAMACPP:
        pytest.skip("llama-cpp-python is not installed")
    try:
        backend = LlamaCppBackend("smollm2-135m-instruct", parallel=4, context_length=1024)
        backend.load()
    except MissingDependency as exc:
        pytest.skip(str(exc))
    yield backend
    backend.close()


def _ask(label: str, seed: int, tokens: int = 24) -> Request:
    return Request(
        messages=[{"role": "user", "content": f"Write three short sentences about {label}, one per line."}],
        params=SamplingParams(max_new_tokens=tokens),
        seed=seed,
    )


@pytest.mark.slow
def test_answers_depend_on_the_request_seed(smollm2):
    assert smollm2.is_chat and smollm2.path.suffix == ".gguf"
    batch = [_ask("sport", 1), _ask("sport", 2), _ask("music", 1), _ask("travel", 3), _ask("sport", 1)]
    first = smollm2.generate(batch)
    assert all(a.text and 0 < a.n_tokens <= 24 for a in first)
    assert first[0].text != first[1].text  # same prompt, another seed
    assert [a.text for a in smollm2.generate(batch)] == [a.text for a in first]  # asked again: the same answers
    alone = [smollm2.generate([_ask("music", 5)])[0].text for _ in range(2)]
    assert alone[0] == alone[1] and alone[0] != first[2].text


@pytest.mark.slow
def test_a_wide_top_k_ahead_of_the_penalty_changes_no_answer(smollm2, monkeypatch):
    """The sampler's prefilter (a top-k of 1,000 + the tokens the penalty can lower, ahead of the penalty) leaves
    the candidates and their order as they were: sampled and greedy answers equal those of the plain chain."""
    import dataclasses

    batch = [_ask("sport", 1, 60), _ask("music", 2, 60), _ask("travel", 3, 60), _ask("sport", 4, 60)]
    batch.append(dataclasses.replace(_ask("health", 5, 60), params=SamplingParams(max_new_tokens=60, temperature=0)))
    fast = [a.text for a in smollm2.generate(batch)]
    monkeypatch.setattr(LlamaCppBackend, "prefilter", False)
    assert [a.text for a in smollm2.generate(batch)] == fast
    assert len(set(fast)) == len(fast)


@pytest.mark.slow
def test_stop_criteria_end_answers_at_a_line(smollm2):
    import dataclasses

    def lines(text: str) -> list[str]:
        return [line for line in text.splitlines() if line.strip()]

    for seed in range(2, 12):  # the first seed whose free answer runs to more than two lines
        ask = _ask("sport", seed, tokens=120)
        ask.messages[0]["content"] = (
            "Write 8 example news headlines about sport. Answer with a numbered list, one per line."
        )
        free = smollm2.generate([ask])[0]
        if len(lines(free.text)) > 2:
            break
    assert len(lines(free.text)) > 2
    two = dataclasses.replace(ask, params=dataclasses.replace(ask.params, stop_lines=2))
    short = smollm2.generate([two])[0]
    assert short.finish_reason == "stop" and short.n_tokens < free.n_tokens
    assert [line for line in short.text.splitlines() if line.strip()] == \
        [line for line in free.text.splitlines() if line.strip()][:2]  # fmt: skip
    room = dataclasses.replace(ask, params=dataclasses.replace(ask.params, line_tokens=119))  # never room for one
    first = smollm2.generate([room])[0]
    assert first.finish_reason == "stop" and first.text == free.text.splitlines()[0].strip()
    assert "stop_lines" not in ask.params.to_dict() and two.key("llamacpp", "m") != ask.key("llamacpp", "m")


def test_a_line_past_its_limit_ends_the_answer_unless_it_is_a_list_or_about_the_answer():
    from rose.generate.backends.llamacpp import _Seq

    def grow(text: str, limit: int = 30) -> tuple[list[bool], _Seq]:
        seq, ends = _Seq(0, 0, Request(prompt="x"), ()), []
        for piece in text.split("|"):
            ends.append(LlamaCppBackend._too_long(seq, piece.encode(), limit))
            if ends[-1]:
                break
        return ends, seq

    ends, seq = grow("1. A sentence| that goes| on and on| and on")
    assert ends == [False, False, True] and seq.long_line
    ends, seq = grow("Héllo wörld, ça va| très bien")  # 32 bytes but 28 characters: not past 30
    assert ends == [False, False] and not seq.long_line
    for free in ('["one sentence", "two| sentences", "three sentences"]',
                 "Here are eight short| sentences about sport| for you to read:"):  # fmt: skip
        ends, seq = grow(free)
        assert not any(ends) and seq.line_free and not seq.long_line


@pytest.mark.slow
def test_a_long_line_ends_the_answer_as_cut_off(smollm2):
    import dataclasses

    from rose.generate.parse import about_answer, parse_examples_counted

    ask = _ask("sport", 2, tokens=160)
    ask.messages[0]["content"] = "Write 8 long news sentences about sport. Answer with a numbered list, one per line."
    free = smollm2.generate([ask])[0]
    lines = [line.strip() for line in free.text.splitlines() if line.strip()]
    # the first line that is no preamble and longer than every such line before it: the limit falls just short of it
    j = next(j for j, line in enumerate(lines) if not about_answer(line) and len(line) > 20 and all(
        about_answer(before) or len(before) < len(line) - 1 for before in lines[:j]))  # fmt: skip
    limit = len(lines[j]) - 2
    cut = smollm2.generate([dataclasses.replace(ask, params=dataclasses.replace(ask.params, line_chars=limit))])[0]
    assert cut.finish_reason == "length" and cut.cut_off and cut.n_tokens < free.n_tokens
    got = [line.strip() for line in cut.text.splitlines() if line.strip()]
    assert got[:-1] == lines[:j] and lines[j].startswith(got[-1]) and len(got[-1]) > limit
    assert parse_examples_counted(cut.text, cut.cut_off)[1]["cut_off"] == 1  # the cut line is not an example


@pytest.mark.slow
def test_a_failed_batch_leaves_no_sequence_or_sampler_in_the_context(smollm2, monkeypatch):
    """A decode that fails in the middle of a batch (prompts computed, tokens being sampled) frees every running
    sequence's KV cells, sampler and kept-prompt pin; the next call answers as if it had never happened."""
    batch = [_ask("sport", 1), _ask("sport", 2), _ask("music", 1)]
    before = [a.text for a in smollm2.generate(batch)]
    lib, made, freed, decodes = smollm2._llama, [], [], [0]
    sampler, free, decode = smollm2._sampler, lib.llama_sampler_free, smollm2._decode

    def failing(n):
        decodes[0] += 1
        if decodes[0] == 8:  # after the prompts, a few generation steps in
            raise RoseError("llama.cpp could not decode a batch (the test's failure)")
        decode(n)

    with monkeypatch.context() as m:
        m.setattr(smollm2, "_sampler", lambda *a: made.append(1) or sampler(*a))
        m.setattr(lib, "llama_sampler_free", lambda chain: freed.append(1) or free(chain))
        m.setattr(smollm2, "_decode", failing)
        with pytest.raises(RoseError, match="the test's failure"):
            smollm2.generate(batch)
    assert decodes[0] == 8 and len(made) == 3 and len(freed) == len(made)
    memory = smollm2._ctx.memory
    assert [lib.llama_memory_seq_pos_max(memory, slot) for slot in range(smollm2.parallel)] == [-1] * 4
    assert not any(smollm2._pins.values())
    assert [a.text for a in smollm2.generate(batch)] == before


COUNT = Request(
    messages=[{"role": "user", "content": "Count from 1 to 20, separated by commas."}],
    params=SamplingParams(temperature=0.0, repetition_penalty=1.0, max_new_tokens=24),
)


@pytest.mark.slow
def test_a_prompt_computed_once_serves_every_sequence(smollm2):
    """Identical prompts in a batch (and in later batches) share one computation of the prompt and still answer
    as a prompt computed alone: greedy decoding of a counting task, checked against a backend that never shares."""
    answers = [a.text for a in smollm2.generate([COUNT] * 6)]  # more requests than the 4 slots
    assert smollm2._kept and len(set(answers)) == 1 and answers[0].startswith("1. 1\n2. 2\n3. 3")
    again = smollm2.generate([COUNT])[0].text  # served from the kept prompt
    plain = LlamaCppBackend("smollm2-135m-instruct", parallel=4, context_length=1024, kept_prompts=0)
    try:
        alone = plain.generate([COUNT])[0].text
        assert not plain._kept
    finally:
        plain.close()
    assert again == alone == answers[0]


@pytest.mark.slow
@needs_llamacpp
@pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data is not beside the repository")
@pytest.mark.parametrize(
    ("generator", "chat"), [("smollm2-135m-instruct", True), ("gemma-3-270m", False)], ids=["chat", "base"]
)
def test_rose_generate_on_both_offline_models(generator, chat, tmp_path, monkeypatch, rose_home):
    import mlflow

    from rose.cli import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_db(tmp_path))
    monkeypatch.chdir(tmp_path)
    args = [
        "generate", "--task", "topic", "--language", "en", "--generator", generator, "--backend", "llamacpp",
        "--strategy", "target_demos", "--per-label", "2", "--examples-per-request", "4", "--demos-per-label", "2",
        "--demo-words", "30", "--max-new-tokens", "80", "--batch-size", "7", "--source", str(SHARED_DATA),
        "--cache-dir", str(tmp_path / "cache"), "--output-dir", str(tmp_path / "out"),
    ]  # fmt: skip
    assert main(args) == 0
    (run,) = mlflow.search_runs(experiment_names=["rose"], output_format="list")
    assert run.data.tags["rose.backend"] == "llamacpp"
    metrics = run.data.metrics
    assert metrics["requests"] >= 7 and metrics["tokens_generated"] > 0 and metrics["requests_cached"] == 0
    assert metrics["kept_total"] > 0
    prompts = (tmp_path / "out" / "prompts.jsonl").read_text()
    assert ('"messages": null' not in prompts) == chat
    # started again without reusing the finished run: every answer comes from the cache
    assert main([*args, "--resume", "false", "--output-dir", str(tmp_path / "again")]) == 0
    again = max(mlflow.search_runs(experiment_names=["rose"], output_format="list"), key=lambda r: r.info.start_time)
    assert again.data.metrics["requests_cached"] == again.data.metrics["requests"] == metrics["requests"]
    assert (tmp_path / "again" / "data.jsonl").read_text() == (tmp_path / "out" / "data.jsonl").read_text()
