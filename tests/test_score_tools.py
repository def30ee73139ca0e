"""The model-backed tools: token log-likelihoods, the reference LM's languages (perplexity refused for others),
parameter counts, the one language detector, the tokenizer fallback, measure_dataset."""

import json

import numpy as np
import pytest
import torch

from rose import language_id
from rose.score import models, tools
from rose.score.config import ScoreConfig
from rose.score.intrinsic import simple_tokens
from rose.score.models import ReferenceLM


class CharTokenizer:
    bos_token_id = 1

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [2 + ord(c) % 40 for c in text]}


def test_token_nll_matches_the_models_own_loss():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=64, n_embd=16, n_layer=1, n_head=2)).eval()
    texts = ["hello", "a much longer text here", "xy"]
    sums, counts = models.token_nll(texts, model, CharTokenizer(), batch=2)
    for text, s, c in zip(texts, sums, counts, strict=True):
        ids = torch.tensor([[1] + CharTokenizer()(text)["input_ids"]])
        with torch.no_grad():
            loss = model(input_ids=ids, labels=ids).loss.item()  # mean over the len - 1 predicted tokens
        assert c == len(text) and s == pytest.approx(loss * c, rel=1e-4)


def test_reference_lm_dtype_is_part_of_what_perplexity_was_measured_with(tmp_path, monkeypatch):
    """bfloat16 where the CPU computes it natively (auto), a key that tells its values from float32's, and a
    perplexity within a percent of float32's on a small model saved and loaded as rose loads the reference LM."""
    from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

    from rose import devices
    from rose.score.intrinsic import perplexity

    monkeypatch.setenv("ROSE_HOME", str(tmp_path / "home"))  # where the bfloat16 copy is stored

    for native, expected in ((True, "bfloat16"), (False, "float32")):
        monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda native=native: native)
        assert models.reference_lm_dtype("auto") == expected
    assert models.reference_lm_dtype("float32") == "float32"
    fp32 = tools.tool_key("gemma-3-270m", sample=200, seed=0)
    bf16 = tools.tool_key("gemma-3-270m", sample=200, seed=0, dtype="bfloat16")
    assert "dtype" not in fp32 and "dtype=bfloat16" in bf16 and bf16 != fp32

    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=64, n_embd=32, n_layer=2, n_head=2)).save_pretrained(tmp_path)
    monkeypatch.setattr("transformers.AutoTokenizer.from_pretrained", lambda *a, **k: CharTokenizer())
    texts = ["hello there", "a much longer text here with more", "xy z"]
    full = models.load_reference_lm(str(tmp_path), ["en"], dtype="float32")
    half = models.load_reference_lm(str(tmp_path), ["en"], dtype="bfloat16")
    assert next(AutoModelForCausalLM.from_pretrained(tmp_path).parameters()).dtype == torch.float32
    a, b = perplexity(*full.nll(texts)), perplexity(*half.nll(texts))
    assert a != b and b == pytest.approx(a, rel=0.01)


def test_a_reference_lm_is_stored_once_in_its_dtype_and_read_as_stored(tmp_path, monkeypatch):
    from safetensors import safe_open
    from transformers import GPT2Config, GPT2LMHeadModel

    monkeypatch.setenv("ROSE_HOME", str(tmp_path / "home"))
    folder = tmp_path / "lm"
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=64, n_embd=32, n_layer=2, n_head=2)).save_pretrained(folder)
    (folder / "tokenizer.json").write_text("{}")  # the small files beside the weights travel with them
    out = models.converted(folder, "bfloat16")
    assert out.parent == tmp_path / "home" / "converted" and (out / "tokenizer.json").exists()
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"BF16"}
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    assert models.converted(folder, "bfloat16") == out and (out / "model.safetensors").stat().st_mtime_ns == stamp
    (folder / "tokenizer.json").write_text('{"rebuilt": 1}')  # an asset rebuilt with the same weights
    assert models.converted(folder, "bfloat16") == out and (out / "tokenizer.json").read_text() == '{"rebuilt": 1}'
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp and not list(out.glob("*.tmp"))
    assert models.converted(out, "bfloat16") == out  # already stored so
    assert models.converted(folder, "float32") == folder
    monkeypatch.setattr("transformers.AutoTokenizer.from_pretrained", lambda *a, **k: CharTokenizer())
    lm = models.load_reference_lm(str(folder), ["en"], dtype="bfloat16")
    assert lm.nll(["some text"])[1] == [9]


def test_generator_parameters(tmp_path):
    from safetensors.numpy import save_file

    save_file({"w": np.zeros((3, 4), np.float32), "b": np.zeros(5, np.float32)}, str(tmp_path / "model.safetensors"))
    assert models.generator_parameters(str(tmp_path)) == 17
    assert models.generator_parameters("google/gemma-3-27b-it") == 2.74e10
    assert models.generator_parameters("meta-llama/Meta-Llama-3-70B-Instruct") == 7.06e10
    assert models.generator_parameters("Qwen/Qwen2.5-0.5B-Instruct") == 5e8
    assert models.generator_parameters("meta-llama/Llama-3-8B") == 8e9
    assert models.generator_parameters("my-model") is None


def test_gptq_packed_weights_are_counted_unpacked(tmp_path):
    from safetensors.numpy import save_file

    # a 4-bit GPTQ linear layer of 64 x 32 weights: qweight packs 8 weights per int32; zeros/scales/g_idx are
    # bookkeeping; the norm's 32 weights are plain
    save_file({"l.qweight": np.zeros((8, 32), np.int32), "l.qzeros": np.zeros((1, 4), np.int32),
               "l.scales": np.zeros((1, 32), np.float16), "l.g_idx": np.zeros(64, np.int32),
               "norm.weight": np.zeros(32, np.float16)}, str(tmp_path / "model.safetensors"))  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps({"quantization_config": {"quant_method": "gptq", "bits": 4}}))
    assert models.generator_parameters(str(tmp_path)) == 64 * 32 + 32


def test_offline_generators_are_counted_from_their_weights(rose_asset):
    folder = rose_asset("smollm2-135m-instruct")
    counted = models.generator_parameters("smollm2-135m-instruct")
    assert counted == models.count_parameters(folder) and 1.2e8 < counted < 1.5e8
    assert counted != models.KNOWN_PARAMETERS["smollm2-135m-instruct"]  # the weights, not the table


def test_reference_lm_declares_its_languages():
    assert models.reference_lm_languages("smollm2-135m-instruct") == {"en"}
    assert models.reference_lm_languages("HuggingFaceTB/SmolLM2-135M-Instruct") == {"en"}
    assert "cy" in models.reference_lm_languages("gemma-3-270m")
    assert "th" in models.reference_lm_languages("facebook/xglm-564M")
    assert "cy" not in models.reference_lm_languages("facebook/xglm-564M")
    assert models.reference_lm_languages("org/unknown-lm") == frozenset()  # unknown: reads nothing for sure
    assert models.reference_lm_languages("org/unknown-lm", ["cy", "en"]) == {"cy", "en"}


def test_perplexity_is_refused_for_a_language_the_reference_lm_does_not_read():
    calls = []

    def nll(texts):
        calls.append(len(texts))
        return [1.0] * len(texts), [1] * len(texts)

    english_only = tools.Tools(reference_lm=ReferenceLM("smollm2-135m-instruct", frozenset({"en"}), nll))
    welsh = tools.measure_dataset(["Mae'r tywydd yn braf.", "Bore da."], language="cy", tools=english_only)
    assert "perplexity" not in welsh and calls == []  # not a number from a model that cannot read the text
    assert "perplexity" not in tools.measure_dataset(["a text"], tools=english_only)  # language unknown
    english = tools.measure_dataset(["The weather is fine.", "Good morning."], language="en", tools=english_only)
    assert english["perplexity"] == pytest.approx(np.e) and calls == [2]

    from rose.score.run import perplexity_note

    note = perplexity_note(ScoreConfig(task=["topic"], language=["cy"], reference_lm="smollm2-135m-instruct"), "cy")
    assert "not available for cy" in note and "reads en" in note
    assert perplexity_note(ScoreConfig(task=["topic"], language=["cy"]), "cy") is None  # the default reads Welsh


def test_tokenizer_falls_back_offline():
    assert tools.subword_tokenizer("/no/such/tokenizer") is simple_tokens


def test_measure_dataset_with_stand_in_tools():
    lm = ReferenceLM("stand-in", frozenset({"th"}), lambda texts: ([1.0] * len(texts), [1] * len(texts)))
    t = tools.Tools(embed=lambda texts: np.eye(len(texts)), reference_lm=lm,
                    identify=lambda texts: ["THAI" if "แ" in t else None for t in texts])  # fmt: skip
    texts = ["แมวกินปลา", "แมวกินนม", "hello world", "hello world"]
    out = tools.measure_dataset(texts, language="th", language_lingua="THAI", demonstrations=["hello world again"],
                                verdicts=["accepted", "rejected"], tools=t)  # fmt: skip
    assert out["target_language_share"] == 0.5 and out["duplicate_rate"] == 0.25
    assert out["vendi"] == pytest.approx(4) and out["embedding_distance"] == pytest.approx(1)
    assert out["perplexity"] == pytest.approx(np.e) and out["revision_acceptance"] == 0.5
    assert out["length_mean"] == pytest.approx((8 + 7 + 2 + 2) / 4)
    assert {"distinct_1", "distinct_2", "distinct_3", "token_entropy", "self_bleu", "compression_ratio",
            "ngram_copy_rate"} <= set(out)  # fmt: skip


def test_one_language_detector_for_generation_and_score():
    from rose.generate.judges import detect_target
    from rose.languages import get_language

    assert language_id.identify(["Mae'r tywydd yn braf iawn heddiw yng Nghymru.", "วันนี้อากาศดีมากครับ"]) == \
        ["WELSH", "THAI"]  # fmt: skip
    texts = ["Mae'r tywydd yn braf iawn heddiw yng Nghymru.", "The weather is very nice today in Wales."]
    assert detect_target(get_language("cy"), texts) == [True, False] == language_id.matches("WELSH", texts)
