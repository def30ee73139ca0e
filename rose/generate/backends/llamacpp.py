"""llama.cpp backend: GGUF files on the CPU through llama-cpp-python, many sequences decoded together.

llama-cpp-python's high-level API (``Llama.create_completion`` / ``create_chat_completion``) decodes one sequence
at a time. This backend uses llama.cpp's own batch API through the package's bindings instead: every request is a
sequence of one context (``n_seq_max`` slots, one unified KV cache), and one ``llama_decode`` call per step
advances every running sequence by a token (continuous batching: a finished sequence's slot takes the next
request at once). Requests with the same prompt (a label's fixed demonstrations, asked with different seeds)
share its KV cells: the prompt is computed once and copied to the other sequences, and the most recent prompts
are kept for later batches.

Prompts are rendered as ``create_chat_completion`` renders them (the GGUF's own chat template through
llama-cpp-python's ``Jinja2ChatFormatter``) for chat models, and tokenized as ``create_completion`` does for
base models. Sampling is rose's: repetition penalty over the prompt and the answer, temperature, then top-p (over
the 1,000 most likely tokens, as in the ``hf`` backend), and a draw from a generator seeded with the request's own
seed. The same requests in the same batches give the same answers; llama.cpp's arithmetic depends on how many
tokens a step decodes (its logits moved by up to ~0.5 between a prompt decoded alone and beside another on
smollm2), so a request decoded beside other requests may be answered differently than alone, as with the ``hf``
backend's padding. The completion cache makes a resumed run exact: answers already given come from disk.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rose.assets import ASSETS, gguf_path
from rose.assets.home import rose_home
from rose.content import file_digest, short
from rose.errors import MissingDependency, RoseError
from rose.generate.backends.base import Backend, Completion, Message, Request
from rose.generate.config import GGUF_WEIGHTS
from rose.generate.parse import about_answer

log = logging.getLogger(__name__)

TOP_K = 1000  # nucleus over the 1,000 most likely tokens, as in the hf backend's sampler
_MOSTLY_F16 = 1  # llama_ftype LLAMA_FTYPE_MOSTLY_F16


def gguf_file(model: str) -> Path:
    """The GGUF file of a model: an offline short name, a ``.gguf`` path, or a folder holding one."""
    if model in ASSETS or model.lower() in ASSETS:
        return gguf_path(model)
    path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path.absolute()
    if path.is_dir():
        found = sorted(path.glob("*.gguf"))
        if found:
            return found[0].absolute()
    raise RoseError(
        f"the llamacpp backend needs a GGUF file: {model!r} is not a .gguf file, a folder holding one, or an "
        f"offline model built from one (smollm2-135m-instruct, gemma-3-270m); use --backend hf for other models"
    )


def decode_file(path: Path, weights: str = "auto", model: str = "") -> Path:
    """The GGUF file to decode: ``path`` itself (``as-is``), or a copy whose quantized weight matrices are stored
    as 16-bit floats (``f16``), made once by llama.cpp's own quantizer (``llama_model_quantize``, the Q4_1 -> F16
    step of ``llama-quantize --allow-requantize``) under ``$ROSE_HOME/converted/<digest of the file>-f16.gguf``.

    The copy holds the same model: each weight is its quantized value (scale x code + offset) rounded to float16,
    a relative change of at most 2^-11 (tests/test_generate_llamacpp.py), smaller than the bfloat16 rounding of
    the ``hf`` backend. What changes is llama.cpp's arithmetic: on x86 its CPU kernels multiply a batch of tokens
    by F16 matrices in tiles (llamafile's sgemm), but by Q4_1 matrices one row and token at a time, so decoding
    many sequences together costs less per token. On the development CPU (2 cores, the AVX2 build of ./bootstrap),
    smollm2-135m-instruct decoded 14 sequences at 3.4 to 4.0 ms a token from the F16 copy against 4.1 to 4.8 ms
    from its Q4_1 file; for gemma-3-270m (Q5_0, Q4_K and Q6_K matrices; its 262k-token output layer Q8_0) the copy
    made no difference.
    ``auto`` is the choice measured for an offline model (``AssetSpec.llamacpp_weights``), else ``as-is``.
    """
    if _known_weights(weights) == "auto":
        spec = ASSETS.get(model) or ASSETS.get(model.lower())
        weights = spec.llamacpp_weights if spec is not None else "as-is"
    if weights == "as-is":
        return path
    return _f16_copy(path)


def _known_weights(weights: str) -> str:
    if weights not in GGUF_WEIGHTS:
        raise RoseError(f"unknown gguf_weights {weights!r}: use one of {', '.join(GGUF_WEIGHTS)}")
    return weights


def _f16_copy(path: Path) -> Path:
    out = rose_home() / "converted" / f"{short(file_digest(path), 24)}-f16.gguf"
    if out.is_file():
        return out
    try:
        import llama_cpp
    except ImportError:
        raise MissingDependency("llama-cpp-python", extra="llamacpp", purpose="the llamacpp backend") from None
    lib = llama_cpp.llama_cpp
    _quiet(lib)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    params = lib.llama_model_quantize_default_params()
    params.ftype, params.allow_requantize, params.nthread = _MOSTLY_F16, True, default_threads()
    start = time.perf_counter()
    try:
        code = lib.llama_model_quantize(str(path).encode(), str(tmp).encode(), ctypes.byref(params))
        if code != 0:
            raise RoseError(f"llama.cpp could not store {path.name} with 16-bit weights (code {code}): is it a "
                            "GGUF model file, and is there room under $ROSE_HOME? Or use gguf_weights as-is")  # fmt: skip
        os.replace(tmp, out)  # another process making the same copy meanwhile wrote the same bytes
    finally:
        tmp.unlink(missing_ok=True)
    log.info("stored %s with 16-bit weights as %s in %.1f s (once)", path.name, out, time.perf_counter() - start)
    return out


def default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


@dataclass
class _Seq:
    """One request being generated in a slot of the context."""

    index: int  # the request's position in the generate() call
    slot: int  # its sequence id in the context
    request: Request
    prompt: tuple[int, ...]
    sampler: Any = None
    pos: int = 0  # position of the next token to decode
    todo: list[int] = field(default_factory=list)  # the next token to decode (the prompt's last, then sampled ones)
    out: list[int] = field(default_factory=list)
    reserved: int = 0  # KV cells this sequence may still own
    lines: int = 0  # non-empty lines finished so far
    open_line: bool = False  # the current line has text
    line: bytearray = field(default_factory=bytearray)  # the current line's bytes (tracked when line_chars is set)
    line_free: bool = False  # the current line is let run past line_chars (a list, or words about the answer)
    long_line: bool = False  # ended by a line longer than line_chars (the answer counts as cut off)
    pin: tuple[int, ...] | None = None  # the kept prompt whose cells this sequence shares
    stopped: bool = False  # ended by a stop criterion


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) jiffies of all cores from /proc/stat, or None where there is none."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return fields[3] + (fields[4] if len(fields) > 4 else 0), sum(fields[:8])


def machine_busy(window: float = 0.3) -> bool:
    """Whether other work already keeps at least half a core busy, measured over ``window`` seconds now (from
    /proc/stat; elsewhere the 1-minute load average against the core count). The caller is idle meanwhile."""
    first = _cpu_times()
    if first is None:
        try:
            return os.getloadavg()[0] >= default_threads()
        except (OSError, AttributeError):  # no load average (Windows)
            return False
    time.sleep(window)
    second = _cpu_times()
    idle, total = second[0] - first[0], second[1] - first[1]
    if total <= 0:
        return False
    return (1 - idle / total) * (os.cpu_count() or 1) >= 0.5


class LlamaCppBackend(Backend):
    name = "llamacpp"
    stops_at_lines = True
    prefilter = True  # a wide top-k ahead of the repetition penalty (see _sampler): the same answers, cheaper

    def __init__(
        self,
        model: str,
        parallel: int = 16,
        threads: int = 0,
        context_length: int = 4096,
        kv_cells: int = 0,
        kept_prompts: int = 12,  # a prompt per label of most tasks: each label's prompt computed once a run
        weights: str = "auto",  # see decode_file
    ):
        super().__init__(model, context_length)
        self.parallel = max(1, min(parallel, 200))
        self.threads = threads or default_threads()
        self.kv_cells = kv_cells or 4 * context_length
        self.kept_prompts = kept_prompts
        self.weights = _known_weights(weights)  # checked here, before anything is loaded
        self.path: Path | None = None
        self._llama = None  # the llama_cpp.llama_cpp bindings module
        self._model = None
        self._ctx = None
        self._batch = None
        self._formatter = None
        self._chat = False
        self._kept: OrderedDict[tuple[int, ...], int] = OrderedDict()  # prompt -> the sequence id holding it
        self._pins: dict[tuple[int, ...], int] = {}

    # ------------------------------------------------------------------ loading
    def load(self) -> None:
        if self._ctx is not None:
            return
        # libgomp reads OMP_WAIT_POLICY once, when it loads. Its default (spin a while, then sleep) is 2.8x faster
        # than PASSIVE on an idle 2-core machine (137 against 50 tokens/s at one sequence, smollm2), but threads that
        # spin make llama.cpp 10-30x slower when the cores are busy with other work (1.6 s instead of 0.05 s a
        # token): PASSIVE then, judged by the CPU use of the moment (a load average lags a minute behind work that
        # just ended). A policy the user set is kept; once llama_cpp is loaded the variable no longer matters, and
        # the 0.3 s measurement is skipped.
        wait_policy = os.environ.get("OMP_WAIT_POLICY")
        if wait_policy is None and "llama_cpp" not in sys.modules and machine_busy():
            os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        try:
            import llama_cpp
            import llama_cpp._internals as internals
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError:
            raise MissingDependency("llama-cpp-python", extra="llamacpp", purpose="the llamacpp backend") from None
        finally:
            if wait_policy is None:
                os.environ.pop("OMP_WAIT_POLICY", None)

        self.path = decode_file(gguf_file(self.model), self.weights, self.model)
        lib = llama_cpp.llama_cpp
        _quiet(lib)
        lib.llama_backend_init()
        try:
            self._model = internals.LlamaModel(
                path_model=str(self.path), params=lib.llama_model_default_params(), verbose=False
            )
        except ValueError as exc:
            raise RoseError(f"llama.cpp cannot load {self.path}: {exc} (is it a GGUF file of a causal LM?)") from None
        params = lib.llama_context_default_params()
        params.n_ctx = self.kv_cells
        params.n_batch = params.n_ubatch = 512
        params.n_seq_max = self.parallel + self.kept_prompts
        params.n_threads = params.n_threads_batch = self.threads
        params.kv_unified = True  # sequences share the cells of a common prompt
        params.no_perf = True
        try:
            self._ctx = internals.LlamaContext(model=self._model, params=params, verbose=False)
        except ValueError as exc:
            raise RoseError(
                f"llama.cpp cannot make a context of {self.kv_cells} cells for {self.path}: {exc}"
            ) from None
        self._llama = lib
        self._batch = lib.llama_batch_init(params.n_batch, 0, 1)
        metadata = self._model.metadata()
        template = metadata.get("tokenizer.chat_template")
        spec = ASSETS.get(self.model) or ASSETS.get(self.model.lower())
        self._chat = bool(template) and (spec is None or spec.chat)
        if self._chat:
            bos, eos = self._model.token_bos(), self._model.token_eos()
            self._formatter = Jinja2ChatFormatter(
                template=template,
                bos_token=self._model.token_get_text(bos) if bos != -1 else "",
                eos_token=self._model.token_get_text(eos) if eos != -1 else "",
                add_generation_prompt=True,
            )
        log.info(
            "loaded %s with llama.cpp (%s, %d threads, %d parallel sequences, %d KV cells)",
            self.path.name, "chat" if self._chat else "completion", self.threads, self.parallel, self.kv_cells,
        )  # fmt: skip

    @property
    def is_chat(self) -> bool:
        self.load()
        return self._chat

    def render(self, rendered: list[Message] | str) -> str:
        if isinstance(rendered, str):
            return rendered
        if self._formatter is None:
            raise RoseError(f"{self.model} has no chat template: use --prompt-format completion")
        return self._formatter(messages=rendered).prompt

    def tokens(self, rendered: list[Message] | str) -> tuple[int, ...]:
        """Prompt tokens as create_chat_completion (chat: no BOS added) or create_completion (raw) makes them."""
        self.load()
        text = self.render(rendered).encode("utf-8")
        return tuple(self._model.tokenize(text, add_bos=isinstance(rendered, str), special=True))

    def count_tokens(self, rendered: list[Message] | str) -> int:
        return len(self.tokens(rendered))

    # ------------------------------------------------------------------ generation
    def generate(self, requests: list[Request]) -> list[Completion]:
        self.load()
        prompts = [self.tokens(r.rendered) for r in requests]
        for prompt, request in zip(prompts, requests, strict=True):
            need = len(prompt) + request.params.max_new_tokens
            if need > self.kv_cells:
                raise RoseError(
                    f"a prompt of {len(prompt)} tokens plus {request.params.max_new_tokens} new tokens does not fit "
                    f"in the llamacpp backend's {self.kv_cells} KV cells: lower --max-new-tokens or --context-length"
                )
        waiting = deque(sorted(range(len(requests)), key=lambda i: prompts[i]))  # equal prompts side by side
        free = list(range(self.parallel))[::-1]
        running: dict[int, _Seq] = {}
        out: list[Completion | None] = [None] * len(requests)
        try:
            while waiting or running:
                while waiting and free and self._admit(requests[waiting[0]], prompts[waiting[0]], running):
                    i = waiting.popleft()
                    seq = _Seq(i, free.pop(), requests[i], prompts[i])
                    running[seq.slot] = seq  # before its prompt is computed: a failure there frees it too
                    self._start(seq)
                for slot in self._step(running):
                    seq = running.pop(slot)
                    out[seq.index] = self._finish(slot, seq)
                    free.append(slot)
        except BaseException:  # a failed decode, Ctrl-C: the context keeps no half-done sequence or sampler
            for slot, seq in running.items():
                self._release(slot, seq)
            raise
        return out  # type: ignore[return-value]

    def _used(self, running: dict[int, _Seq]) -> int:
        return sum(s.reserved for s in running.values()) + sum(len(p) - 1 for p in self._kept)

    def _admit(self, request: Request, prompt: tuple[int, ...], running: dict[int, _Seq]) -> bool:
        """Whether the KV cache can take this request now, dropping unused kept prompts to make room."""
        need = request.params.max_new_tokens + (1 if prompt in self._kept else len(prompt))
        while self._used(running) + need > self.kv_cells:
            victim = next((p for p in self._kept if p != prompt and not self._pins.get(p)), None)
            if victim is None:
                return False
            self._drop_kept(victim)
        return True

    def _start(self, seq: _Seq) -> _Seq:
        """Give a sequence its prompt: all but the last token from a kept copy or computed now, alone.

        A prompt is always computed by itself (never in a batch with other sequences' tokens) and its last token is
        always decoded in a generation step, so an answer does not depend on whether its prompt was shared (greedy
        answers equal a prompt computed alone: tests/test_generate_llamacpp.py). The same requests in the same
        batches give the same answers; in other company an answer may differ by float rounding (where its KV cells
        lie), which sampling can amplify: when the demo's rounds went to llama.cpp whole instead of 7 at a time, 4
        of the 65 requests both runs made answered alike.
        """
        prompt, lib = seq.prompt, self._llama
        seq.sampler = self._sampler(seq.request, prompt)
        for token in prompt:  # the repetition penalty covers the prompt, as in the hf backend
            lib.llama_sampler_accept(seq.sampler, token)
        head = len(prompt) - 1
        seq.pos, seq.todo = head, [prompt[-1]]
        seq.reserved = seq.request.params.max_new_tokens + 1
        if head == 0:
            return seq
        if prompt in self._kept:
            self._kept.move_to_end(prompt)
            lib.llama_memory_seq_cp(self._ctx.memory, self._kept[prompt], seq.slot, 0, head)
        else:
            self._prefill(seq.slot, prompt[:head])
            if not self._keep(seq.slot, prompt):
                seq.reserved += head  # the sequence owns its prompt's cells
                return seq
        self._pins[prompt] = self._pins.get(prompt, 0) + 1
        seq.pin = prompt
        return seq

    def _prefill(self, slot: int, tokens: tuple[int, ...]) -> None:
        batch, room = self._batch, 512
        for start in range(0, len(tokens), room):
            chunk = tokens[start : start + room]
            for j, token in enumerate(chunk):
                self._put(j, token, start + j, slot, False)
            batch.n_tokens = len(chunk)
            self._decode(len(chunk))

    def _put(self, n: int, token: int, pos: int, slot: int, logits: bool) -> None:
        batch = self._batch
        batch.token[n] = token
        batch.pos[n] = pos
        batch.n_seq_id[n] = 1
        batch.seq_id[n][0] = slot
        batch.logits[n] = logits

    def _decode(self, n: int) -> None:
        code = self._llama.llama_decode(self._ctx.ctx, self._batch)
        if code != 0:
            raise RoseError(
                f"llama.cpp could not decode a batch of {n} tokens (code {code}"
                + (": the KV cache is full; lower --batch-size or --max-new-tokens" if code == 1 else "")
                + ")"
            )

    def _step(self, running: dict[int, _Seq]) -> list[int]:
        """Decode one token of every running sequence together; returns the slots that finished."""
        lib = self._llama
        rows = list(running.items())
        for n, (slot, seq) in enumerate(rows):
            self._put(n, seq.todo[0], seq.pos, slot, True)
        self._batch.n_tokens = len(rows)
        self._decode(len(rows))
        finished = []
        for n, (slot, seq) in enumerate(rows):
            seq.pos += 1
            token = lib.llama_sampler_sample(seq.sampler, self._ctx.ctx, n)
            seq.out.append(token)
            if lib.llama_vocab_is_eog(self._model.vocab, token) or len(seq.out) >= seq.request.params.max_new_tokens:
                finished.append(slot)
            elif self._enough(seq, token):
                seq.stopped = not seq.long_line
                finished.append(slot)
            else:
                seq.todo = [token]
        return finished

    def _enough(self, seq: _Seq, token: int) -> bool:
        """The request's stop criteria, checked at the end of each line, and ``line_chars`` as a line grows (see
        SamplingParams)."""
        p = seq.request.params
        if not (p.stop_lines or p.line_tokens or p.line_chars):
            return False
        piece = self._model.token_to_piece(token, special=False).split(b"\0", 1)[0]  # a NUL-padded buffer
        if b"\n" not in piece:
            seq.open_line = seq.open_line or bool(piece.strip())
            return bool(p.line_chars) and self._too_long(seq, piece, p.line_chars)
        before, _, after = piece.rpartition(b"\n")
        if seq.open_line or before.strip():
            seq.lines += 1
        seq.open_line = bool(after.strip())
        if p.line_chars:
            seq.line.clear()
            seq.line_free = False
            if self._too_long(seq, after, p.line_chars):
                return True
        if seq.open_line or not seq.lines:
            return False
        left = p.max_new_tokens - len(seq.out)
        return bool(p.stop_lines and seq.lines >= p.stop_lines) or bool(p.line_tokens and left < p.line_tokens)

    @staticmethod
    def _too_long(seq: _Seq, piece: bytes, limit: int) -> bool:
        """Whether the current line, ``piece`` added, has run past ``limit`` characters and cannot be an example."""
        if seq.line_free:
            return False
        seq.line += piece
        if len(seq.line) <= limit:  # bytes >= characters: a cheap check first
            return False
        text = seq.line.decode("utf-8", errors="ignore").strip()
        if len(text) <= limit:
            return False
        if text.startswith(("[", "{")) or about_answer(text):
            seq.line_free = True  # a list on one line, or a long preamble: the answer goes on
            seq.line.clear()
            return False
        seq.long_line = True
        return True

    def _keep(self, slot: int, prompt: tuple[int, ...]) -> bool:
        """Keep a prompt just computed in ``slot`` (all but its last token) for later requests; False if no room."""
        if self.kept_prompts == 0:
            return False
        if len(self._kept) >= self.kept_prompts:
            victim = next((p for p in self._kept if not self._pins.get(p)), None)
            if victim is None:
                return False
            self._drop_kept(victim)
        used = set(self._kept.values())
        keeper = next(k for k in range(self.parallel, self.parallel + self.kept_prompts) if k not in used)
        self._llama.llama_memory_seq_cp(self._ctx.memory, slot, keeper, 0, len(prompt) - 1)
        self._kept[prompt] = keeper
        return True

    def _drop_kept(self, prompt: tuple[int, ...]) -> None:
        self._llama.llama_memory_seq_rm(self._ctx.memory, self._kept.pop(prompt), -1, -1)
        self._pins.pop(prompt, None)

    def _release(self, slot: int, seq: _Seq) -> None:
        """Free what a sequence holds: its KV cells, its sampler, its pin on a kept prompt."""
        self._llama.llama_memory_seq_rm(self._ctx.memory, slot, -1, -1)
        if seq.sampler is not None:
            self._llama.llama_sampler_free(seq.sampler)
            seq.sampler = None
        if seq.pin is not None and seq.pin in self._pins:
            self._pins[seq.pin] -= 1
        seq.pin = None

    def _finish(self, seq_id: int, seq: _Seq) -> Completion:
        lib = self._llama
        self._release(seq_id, seq)
        eog = bool(seq.out) and lib.llama_vocab_is_eog(self._model.vocab, seq.out[-1])
        tokens = seq.out[:-1] if eog else seq.out
        stopped = eog or seq.stopped
        text = self._model.detokenize(tokens, special=False).decode("utf-8", errors="replace")
        return Completion(text.strip(), n_tokens=len(seq.out), finish_reason="stop" if stopped else "length")

    def _sampler(self, request: Request, prompt: tuple[int, ...]):
        """Repetition penalty, top-1000, temperature, top-p, then a draw seeded by the request (greedy at t <= 0).

        A penalty above 1 only lowers the logits of tokens already seen, at most the prompt's distinct tokens plus
        the answer's. So the 1,000 most likely tokens after it are among the 1,000 + that many most likely before
        it, and a top-k that wide ahead of the penalty leaves the same candidates, in the same order: the penalty
        then walks some 1,500 candidates instead of the whole vocabulary (262k tokens for gemma-3, 0.65 of 2.3 ms
        a token), and the answers are the same (tests/test_generate_llamacpp.py)."""
        lib, p = self._llama, request.params
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        if p.repetition_penalty and p.repetition_penalty != 1.0:
            if p.repetition_penalty > 1.0 and self.prefilter:
                keep = (TOP_K if p.temperature > 0 else 1) + len(set(prompt)) + p.max_new_tokens
                lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_k(keep))
            window = len(prompt) + p.max_new_tokens
            n_vocab = lib.llama_vocab_n_tokens(self._model.vocab)
            lib.llama_sampler_chain_add(
                chain, lib.llama_sampler_init_penalties(n_vocab, window, p.repetition_penalty, 0.0, 0.0)
            )
        if p.temperature <= 0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
            return chain
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_k(TOP_K))
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_temp(p.temperature))
        if p.top_p < 1.0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_p(p.top_p, 1))
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_dist(int(request.seed) & 0xFFFFFFFF))
        return chain

    def close(self) -> None:
        if self._batch is not None:
            self._llama.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx is not None:
            self._ctx.close()
            self._ctx = None
        if self._model is not None:
            self._model.close()
            self._model = None
        self._kept.clear()
        self._pins.clear()


_LOG_CALLBACK = None


def _quiet(lib) -> None:
    """Send llama.cpp's own log lines (model loading, context sizes) to nowhere unless rose logs at DEBUG."""
    global _LOG_CALLBACK
    if _LOG_CALLBACK is not None or log.isEnabledFor(logging.DEBUG):
        return

    def ignore(level, text, user_data):
        return None

    _LOG_CALLBACK = lib.llama_log_callback(ignore)
    lib.llama_log_set(_LOG_CALLBACK, None)
