"""vLLM backend: an offline engine with prefix caching, in its own process.

Every prompt of a label shares its prefix (system message, demonstrations), which prefix caching computes once.
``tensor_parallel_size`` splits a model too large for one GPU (Llama-3-70B in 16 bits) over several.
The engine lives in a child process, so closing the backend frees all GPU memory before the next candidate is
loaded. vLLM is not importable on CPU-only machines; only this module's worker imports it.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
from typing import Any

from rose.errors import MissingDependency, RoseError
from rose.generate.backends.base import Backend, Completion, Request, SamplingParams
from rose.generate.backends.hf import resolve

log = logging.getLogger(__name__)


def sampling_params_to_vllm(params: SamplingParams, seed: int) -> dict[str, Any]:
    """Keyword arguments of ``vllm.SamplingParams`` for rose's sampling parameters and a request seed."""
    return {
        "temperature": params.temperature,
        "top_p": params.top_p,
        "repetition_penalty": params.repetition_penalty,
        "max_tokens": params.max_new_tokens,
        "seed": int(seed),
        "n": 1,
    }


def engine_args(model: str, context_length: int, gguf_tokenizer: str | None = None,
                tensor_parallel_size: int = 1) -> dict[str, Any]:  # fmt: skip
    """Keyword arguments of ``vllm.LLM``; ``tensor_parallel_size`` splits the model over that many GPUs."""
    if tensor_parallel_size < 1:
        raise RoseError(f"tensor_parallel_size must be 1 or more, not {tensor_parallel_size}")
    args = {"model": model, "enable_prefix_caching": True, "max_model_len": context_length, "seed": 0,
            "tensor_parallel_size": int(tensor_parallel_size)}  # fmt: skip
    if gguf_tokenizer:
        args["tokenizer"] = gguf_tokenizer
    return args


def _worker(conn, model: str, context_length: int, tensor_parallel_size: int = 1) -> None:  # the child process
    try:
        from vllm import LLM
        from vllm import SamplingParams as VSamplingParams
    except ImportError:
        conn.send(("error", "vllm is not installed: run `pip install 'rose[vllm]'` in a GPU environment"))
        return
    try:
        llm = LLM(**engine_args(model, context_length, tensor_parallel_size=tensor_parallel_size))
        tok = llm.get_tokenizer()
        conn.send(("ready", bool(getattr(tok, "chat_template", None))))
        while (job := conn.recv()) is not None:
            prompts, kwargs = [], []
            for rendered, params, seed in job:
                if not isinstance(rendered, str):
                    rendered = tok.apply_chat_template(rendered, tokenize=False, add_generation_prompt=True)
                prompts.append(rendered)
                kwargs.append(VSamplingParams(**sampling_params_to_vllm(params, seed)))
            outs = llm.generate(prompts, kwargs, use_tqdm=False)
            conn.send(
                (
                    "ok",
                    [
                        (o.outputs[0].text, len(o.outputs[0].token_ids), o.outputs[0].finish_reason or "stop")
                        for o in outs
                    ],
                )
            )
    except Exception as exc:  # report to the parent, which raises it as a RoseError
        conn.send(("error", f"{type(exc).__name__}: {exc}"))


class VLLMBackend(Backend):
    name = "vllm"

    def __init__(self, model: str, context_length: int = 4096, tensor_parallel_size: int = 1):
        super().__init__(model, context_length)
        self.tensor_parallel_size = tensor_parallel_size
        self._proc = None
        self._conn = None
        self._chat = True

    @property
    def is_chat(self) -> bool:
        self.load()
        return self._chat

    def load(self) -> None:
        if self._proc is not None:
            return

        where, gguf = resolve(self.model)
        model = f"{where}/{gguf}" if gguf else where
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        # vLLM starts one worker process per GPU beyond the first, which a daemonic process may not do
        self._proc = ctx.Process(target=_worker, args=(child, model, self.context_length, self.tensor_parallel_size),
                                 daemon=self.tensor_parallel_size == 1)  # fmt: skip
        self._proc.start()
        status, value = self._receive()
        if status == "error" and "not installed" in value:
            self.close()
            raise MissingDependency("vllm", extra="vllm", purpose="the vllm backend")
        self._chat = bool(value)

    def _receive(self) -> tuple[str, Any]:
        try:
            status, value = self._conn.recv()
        except EOFError:
            raise RoseError(f"the vLLM worker for {self.model} died (out of GPU memory?)") from None
        if status == "error" and "not installed" not in value:
            raise RoseError(f"vLLM failed on {self.model}: {value}")
        return status, value

    def generate(self, requests: list[Request]) -> list[Completion]:
        self.load()
        self._conn.send([(r.rendered, r.params, r.seed) for r in requests])
        _, rows = self._receive()
        return [Completion(text, n, finish) for text, n, finish in rows]

    def close(self) -> None:
        if self._proc is not None:
            try:
                self._conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            self._proc.join(timeout=60)
            if self._proc.is_alive():
                self._proc.terminate()
            self._proc = self._conn = None
