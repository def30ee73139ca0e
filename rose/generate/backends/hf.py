"""transformers backend: batched generation with left padding on CPU or GPU, bf16 where the hardware has it.

Loads hub ids, local folders and GGUF files (``gguf_file=``). Sampling is done by a logits processor that
applies the repetition penalty, temperature and top-p, then picks a token by the Gumbel-max trick with one
random generator per request seeded by the request's own seed: an answer depends on its request, not on which
other requests share its batch, so resumed runs and different batch sizes give the same answers (up to
floating-point noise from padding).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from rose.devices import bf16_supported
from rose.errors import MissingDependency, RoseError
from rose.generate.backends.base import STOP_CRITERIA, Backend, Completion, Message, Request, SamplingParams

log = logging.getLogger(__name__)


def resolve(model: str) -> tuple[str, str | None]:
    """(folder or hub id, GGUF file name or None) for a short name, hub id, folder or ``.gguf`` path
    (:func:`rose.assets.resolve_model`, then the GGUF file a folder holds)."""
    from rose.assets import resolve_model

    path = Path(resolve_model(model)).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return str(path.parent), path.name
    if path.is_dir() and not (path / "config.json").exists():
        ggufs = sorted(path.glob("*.gguf"))
        if ggufs:
            return str(path), ggufs[0].name
    return (str(path) if path.exists() else model), None


def best_dtype(device: str):
    """bf16 where the hardware computes it natively (:func:`rose.devices.bf16_supported`), else fp16 on old GPUs
    and fp32 on CPU."""
    import torch

    if bf16_supported(device):
        return torch.bfloat16
    return torch.float16 if device.startswith("cuda") else torch.float32


def neutral_generation_config(lm, pad_token_id: int | None):
    """A GenerationConfig with transformers' global defaults and the model's special tokens only.

    transformers (>= 4.50) fills every field a ``generate()`` call leaves unset from the model's own
    ``generation_config`` (Gemma-3, Llama-3 and Qwen2.5 instruct models set ``do_sample``, ``temperature``,
    ``top_p``, ``top_k``, sometimes ``repetition_penalty``); with this one in its place, sampling is rose's alone.
    """
    from transformers import GenerationConfig

    own = lm.generation_config
    kept = {k: getattr(own, k, None) for k in ("bos_token_id", "eos_token_id", "decoder_start_token_id")}
    defaults = GenerationConfig()._get_default_generation_params()
    config = GenerationConfig(**{k: v for k, v in defaults.items() if k != "max_length"})  # max_new_tokens rules
    for key, value in {**kept, "pad_token_id": pad_token_id}.items():
        setattr(config, key, value)
    ignored = {
        k: v
        for k, v in own.to_diff_dict().items()
        if k in ("do_sample", "temperature", "top_p", "top_k", "min_p", "typical_p", "repetition_penalty",
                 "no_repeat_ngram_size", "min_length", "min_new_tokens", "suppress_tokens", "bad_words_ids")
    }  # fmt: skip
    if ignored:
        log.info("ignoring the model's own generation defaults %s: rose's sampling parameters apply", ignored)
    return config


class HFBackend(Backend):
    name = "hf"

    def __init__(
        self, model: str, batch_size: int = 16, device: str = "auto", dtype: str = "auto", context_length: int = 4096
    ):
        super().__init__(model, context_length)
        self.batch_size = batch_size
        self.device = device
        self.dtype = dtype
        self.tok = None
        self.lm = None
        self.prefix_cache_bytes = 1 << 30  # KV caches of recent prompts kept for reuse (0: off)
        self._prefixes: dict[str, list] = {}

    def load(self) -> None:
        if self.lm is not None:
            return
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError:
            raise MissingDependency("transformers", purpose="the hf backend") from None
        if self.device == "auto":
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        where, gguf = resolve(self.model)
        extra = {"gguf_file": gguf} if gguf else {}
        dtype = best_dtype(self.device) if self.dtype == "auto" else getattr(torch, self.dtype)
        try:
            self.tok = AutoTokenizer.from_pretrained(where, **extra)
            self.lm = AutoModelForCausalLM.from_pretrained(where, dtype=dtype, **extra).to(self.device).eval()
        except OSError as exc:
            raise RoseError(f"cannot load model {self.model!r} from {where}: {str(exc).splitlines()[0]}") from None
        self.tok.padding_side = "left"
        if self.tok.pad_token_id is None:
            self.tok.pad_token = self.tok.eos_token
        self.lm.generation_config = neutral_generation_config(self.lm, self.tok.pad_token_id)
        why = "asked" if self.dtype != "auto" else ("native bf16" if dtype == torch.bfloat16 else "no native bf16")
        log.info("loaded %s on %s in %s (%s)%s", self.model, self.device, dtype, why, " from GGUF" if gguf else "")

    @property
    def is_chat(self) -> bool:
        self.load()
        return bool(getattr(self.tok, "chat_template", None))

    def render(self, request: Request) -> str:
        if request.messages is None:
            return request.prompt
        return self.tok.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True)

    def count_tokens(self, rendered: list[Message] | str) -> int:
        self.load()
        text = (
            rendered
            if isinstance(rendered, str)
            else self.tok.apply_chat_template(rendered, tokenize=False, add_generation_prompt=True)
        )
        return len(self.tok(text, add_special_tokens=False).input_ids)

    def generate(self, requests: list[Request]) -> list[Completion]:
        self.load()
        out: list[Completion | None] = [None] * len(requests)
        # the stop criteria are not implemented here: they do not split a batch
        params_of = [dataclasses.replace(r.params, **dict.fromkeys(STOP_CRITERIA, 0)) for r in requests]
        order = sorted(range(len(requests)), key=lambda i: (repr(params_of[i]), len(self.render(requests[i]))))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            groups: dict[SamplingParams, list[int]] = {}
            for i in chunk:
                groups.setdefault(params_of[i], []).append(i)
            for params, index in groups.items():
                for i, completion in zip(index, self._batch([requests[i] for i in index], params), strict=True):
                    out[i] = completion
        return out  # type: ignore[return-value]

    def _batch(self, requests: list[Request], params: SamplingParams) -> list[Completion]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList

        texts = [self.render(r) for r in requests]
        enc = self.tok(texts, return_tensors="pt", padding=True, add_special_tokens=requests[0].messages is None)
        enc = {k: v.to(self.device) for k, v in enc.items()}
        pads = (enc["attention_mask"] == 0).sum(dim=1).tolist()
        eos = self.lm.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [self.tok.eos_token_id])
        config = GenerationConfig(  # every field rose leaves out is the neutral default (see load())
            max_new_tokens=params.max_new_tokens,
            do_sample=False,  # SeededSampler draws the token (Gumbel-max); greedy picks it
            num_beams=1,
            temperature=1.0,
            top_p=1.0,
            repetition_penalty=1.0,  # applied by SeededSampler, once
            no_repeat_ngram_size=0,
            min_length=0,
            pad_token_id=self.tok.pad_token_id,
            eos_token_id=eos,
        )
        sampler = SeededSampler([r.seed for r in requests], params, pads)
        with torch.inference_mode():
            extra = self._shared_prefill(texts, enc) if self.prefix_cache_bytes else {}
            seqs = self.lm.generate(
                **enc, **extra, generation_config=config, logits_processor=LogitsProcessorList([sampler])
            )
        new = seqs[:, enc["input_ids"].shape[1] :].tolist()
        out = []
        for row in new:
            n = next((j + 1 for j, t in enumerate(row) if t in eos), None)
            finish = "stop" if n is not None else "length"
            tokens = row[:n] if n is not None else row
            text = self.tok.decode(tokens, skip_special_tokens=True)
            out.append(Completion(text.strip(), n_tokens=len(tokens), finish_reason=finish))
        return out

    def _shared_prefill(self, texts: list[str], enc: dict) -> dict:
        """A KV cache of every row's prompt (all but its last token), from an LRU cache of prompts.

        Requests of one label with fixed demonstrations repeat the same prompt with different seeds, within a batch
        and across batches; on CPU the prompt's forward pass costs more than the answer. Each distinct prompt is
        computed once (alone, so its cache does not depend on the batch) and copied, left-padded, into every row
        that uses it, as vLLM's prefix caching does. Models whose cache is not one tensor per full prompt (sliding
        windows) fall back to plain batched prefill.
        """
        from transformers import DynamicCache

        ids, mask = enc["input_ids"], enc["attention_mask"]
        length = ids.shape[1] - 1
        if length < 1:
            return {}
        rows = []
        for row, text in enumerate(texts):
            pad = int((mask[row] == 0).sum())
            kv = self._prefix(text, ids[row, pad:-1])
            if kv is None:
                return {}
            rows.append((pad, kv))
        layers = []
        for layer in range(len(rows[0][1])):
            k0, v0 = rows[0][1][layer]
            keys = k0.new_zeros((len(rows), k0.shape[1], length, k0.shape[3]))
            values = v0.new_zeros((len(rows), v0.shape[1], length, v0.shape[3]))
            for row, (pad, kv) in enumerate(rows):
                keys[row, :, pad:] = kv[layer][0][0]
                values[row, :, pad:] = kv[layer][1][0]
            layers.append((keys, values))
        return {"past_key_values": DynamicCache(ddp_cache_data=layers, config=self.lm.config)}

    def _prefix(self, text: str, ids) -> list | None:
        if text in self._prefixes:
            self._prefixes[text] = self._prefixes.pop(text)  # most recently used last
            return self._prefixes[text]
        if ids.shape[0] == 0:
            return None
        out = self.lm(input_ids=ids[None], use_cache=True)
        kv = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
        if any(k is None or k.shape[2] != ids.shape[0] for k, _ in kv):
            return None
        self._prefixes[text] = kv

        def size(item: list) -> int:
            return sum(k.numel() * k.element_size() * 2 for k, _ in item)

        while len(self._prefixes) > 1 and sum(map(size, self._prefixes.values())) > self.prefix_cache_bytes:
            self._prefixes.pop(next(iter(self._prefixes)))
        return kv


class SeededSampler:
    """Repetition penalty (prompt and output, pads excluded), temperature, top-p, then Gumbel-max per row."""

    def __init__(self, seeds: list[int], params: SamplingParams, pads: list[int]):
        import torch

        self.params = params
        self.pads = pads
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]

    def __call__(self, input_ids, scores):
        import torch

        scores = scores.float()
        p = self.params
        if p.repetition_penalty and p.repetition_penalty != 1.0:
            for row, pad in enumerate(self.pads):
                seen = input_ids[row, pad:].unique()
                vals = scores[row, seen]
                scores[row, seen] = torch.where(vals < 0, vals * p.repetition_penalty, vals / p.repetition_penalty)
        if p.temperature <= 0:
            return scores  # greedy
        scores = scores / p.temperature
        if p.top_p < 1.0:
            # nucleus over the 1,000 most likely tokens: the rest hold no probability mass at these settings
            ordered, index = scores.topk(min(1000, scores.shape[-1]), dim=-1)
            probs = ordered.softmax(dim=-1)
            drop = probs.cumsum(dim=-1) - probs > p.top_p
            ordered = ordered.masked_fill(drop, float("-inf"))
            scores = torch.full_like(scores, float("-inf")).scatter(-1, index, ordered)
        noise = torch.stack([torch.rand(scores.shape[-1], generator=g) for g in self.generators]).to(scores.device)
        gumbel = -torch.log(-torch.log(noise.clamp(1e-10, 1 - 1e-10)))
        return scores + gumbel
