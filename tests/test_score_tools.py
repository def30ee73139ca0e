"""The model-backed tools: token log-likelihoods, parameter counts, tokenizer fallback, measure_dataset."""

import numpy as np
import pytest
import torch

from rose.score import tools
from rose.score.intrinsic import simple_tokens


class CharTokenizer:
    bos_token_id = 1

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [2 + ord(c) % 40 for c in text]}


def test_token_nll_matches_the_models_own_loss():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=64, n_embd=16, n_layer=1, n_head=2)).eval()
    texts = ["hello", "a much longer text here", "xy"]
    sums, counts = tools.token_nll(texts, model, CharTokenizer(), batch=2)
    for text, s, c in zip(texts, sums, counts, strict=True):
        ids = torch.tensor([[1] + CharTokenizer()(text)["input_ids"]])
        with torch.no_grad():
            loss = model(input_ids=ids, labels=ids).loss.item()  # mean over the len - 1 predicted tokens
        assert c == len(text) and s == pytest.approx(loss * c, rel=1e-4)


def test_generator_parameters(tmp_path):
    from safetensors.numpy import save_file

    save_file({"w": np.zeros((3, 4), np.float32), "b": np.zeros(5, np.float32)}, str(tmp_path / "model.safetensors"))
    assert tools.generator_parameters(str(tmp_path)) == 17
    assert tools.generator_parameters("google/gemma-3-27b-it") == 2.7e10
    assert tools.generator_parameters("Qwen/Qwen2.5-0.5B-Instruct") == 5e8
    assert tools.generator_parameters("meta-llama/Llama-3-8B") == 8e9
    assert tools.generator_parameters("my-model") is None


def test_tokenizer_falls_back_offline():
    assert tools.subword_tokenizer("/no/such/tokenizer") is simple_tokens


def test_measure_dataset_with_stand_in_tools():
    t = tools.Tools(embed=lambda texts: np.eye(len(texts)), detect=lambda text: "THAI" if "แ" in text else None,
                    nll=lambda texts: ([1.0] * len(texts), [1] * len(texts)))  # fmt: skip
    texts = ["แมวกินปลา", "แมวกินนม", "hello world", "hello world"]
    out = tools.measure_dataset(texts, language_lingua="THAI", demonstrations=["hello world again"],
                                verdicts=["accepted", "rejected"], tools=t)  # fmt: skip
    assert out["target_language_share"] == 0.5 and out["duplicate_rate"] == 0.25
    assert out["vendi"] == pytest.approx(4) and out["embedding_distance"] == pytest.approx(1)
    assert out["perplexity"] == pytest.approx(np.e) and out["revision_acceptance"] == 0.5
    assert out["length_mean"] == pytest.approx((8 + 7 + 2 + 2) / 4)
    assert {"distinct_1", "distinct_2", "distinct_3", "self_bleu", "compression_ratio", "ngram_copy_rate"} <= set(out)


def test_language_detector_on_catalog_languages():
    detect = tools.language_detector()
    assert detect("Mae'r tywydd yn braf iawn heddiw yng Nghymru.") == "WELSH"
    assert detect("วันนี้อากาศดีมากครับ") == "THAI"
