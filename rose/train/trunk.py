"""A frozen trunk computed once: the output of an encoder's frozen lower layers, cached and shared.

With ``train_top_layers N`` the embeddings and every layer below the top ``N`` are frozen and run in eval mode (no
dropout), so their output for a text depends only on the base model's weights, the cut (how many layers are
frozen), the token ids (the text, the tokenizer and the max length) and the autocast dtype. It is computed once per
(base model digest, cut, dataset, max length, dtype) and shared by every epoch and seed of a training and by every
cell that reads the dataset (each classifier of the same base and cut): an epoch, or a cell, then costs the top
layers only. A different base, cut, dataset, max length or dtype is a different key, never a reuse.

The cache lives in this process (bounded, least recently used out) and on disk under ``$ROSE_HOME/trunk`` (or
``ROSE_TRUNK_CACHE``; ``ROSE_TRUNK_CACHE=off`` keeps it in memory only), so worker processes of a study share it;
the disk cache is pruned to ``ROSE_TRUNK_CACHE_MB`` (default 2048) oldest first.

The top pass runs the model's own code: a view of the model whose embeddings hand the cached states through and
whose encoder holds only the top layers (the same modules, so training the view trains the model).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import threading
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torch

from rose.errors import RoseError
from rose.train.batching import padded_batches

log = logging.getLogger(__name__)

FORMAT = 1  # bump when what a cached trunk holds changes
MEMORY_BYTES = 1 << 30  # in-process bound


def _layers(model: torch.nn.Module):
    base = model.base_model
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if layers is None or not hasattr(base, "embeddings"):
        raise RoseError(f"{type(model).__name__} has no encoder.layer list: its trunk cannot be cached")
    return base, layers


def layer_count(model: torch.nn.Module) -> int:
    return len(_layers(model)[1])


def cut_of(model: torch.nn.Module, top: int) -> int:
    """How many encoder layers sit below the top ``top`` (the frozen ones)."""
    return layer_count(model) - top


def frozen_modules(model: torch.nn.Module, cut: int) -> list[torch.nn.Module]:
    """The modules of the trunk: the embeddings and the layers below ``cut``."""
    base, layers = _layers(model)
    return [base.embeddings, *layers[:cut]]


def key(base_digest: str, cut: int, input_ids: Sequence[Sequence[int]], max_length: int, bf16: bool) -> str:
    """The cache key: a digest of the base model's weights, the cut, the token ids, the max length and the dtype."""
    h = hashlib.sha256(json.dumps({"format": FORMAT, "base": base_digest, "cut": cut, "max_length": max_length,
                                   "bf16": bool(bf16), "texts": len(input_ids)}).encode())  # fmt: skip
    for ids in input_ids:
        h.update(array("q", ids).tobytes())
        h.update(b"\xff")
    return h.hexdigest()


class _View(torch.nn.Module):
    """Stands in for the embeddings: hands the given states through."""

    def forward(self, input_ids=None, inputs_embeds=None, **_):
        return inputs_embeds


def _with_layers(model: torch.nn.Module, layers: list[torch.nn.Module], passthrough: bool) -> torch.nn.Module:
    """A shallow view of ``model`` sharing its modules, whose encoder runs only ``layers`` (and whose embeddings
    hand ``inputs_embeds`` through, with ``passthrough``)."""
    base, _ = _layers(model)
    view_base = copy.copy(base)
    view_base._modules = dict(base._modules)
    encoder = copy.copy(base.encoder)
    encoder._modules = dict(base.encoder._modules)
    encoder._modules["layer"] = torch.nn.ModuleList(layers)
    view_base._modules["encoder"] = encoder
    if passthrough:
        view_base._modules["embeddings"] = _View()
    if base is model:
        return view_base
    view = copy.copy(model)
    view._modules = dict(model._modules)
    view._modules[model.base_model_prefix] = view_base
    return view


# Sequence classifiers whose head reads the first token's output only (XLM-R's and RoBERTa's classification head,
# BERT's pooler), with the encoder layer :class:`FirstTokenLayer` knows.
FIRST_TOKEN_TYPES = ("xlm-roberta", "roberta", "bert", "camembert")


class FirstTokenLayer(torch.nn.Module):
    """An encoder's last layer computed for the first token only, with the layer's own modules: keys and values
    from every token, the query, attention output and feed-forward from the first. A sequence classifier of
    :data:`FIRST_TOKEN_TYPES` reads nothing else of the last layer, so its logits are the full layer's (to float
    rounding) at about a sixth of the layer's cost: on the demo's top four layers, a fifth less per training step
    and per cell. Its dropout draws fewer random numbers than the full layer's (one token's, not every token's),
    so under dropout a training differs from one through the whole model in its random masks only."""

    def __init__(self, layer: torch.nn.Module):
        super().__init__()
        self.layer = layer

    @staticmethod
    def fits(model: torch.nn.Module, layer: torch.nn.Module) -> bool:
        config = model.config
        attention = getattr(getattr(layer, "attention", None), "self", None)
        return (config.model_type in FIRST_TOKEN_TYPES and not config.is_decoder
                and getattr(config, "_attn_implementation", "eager") in ("eager", "sdpa")  # a 4-D mask, or none
                and getattr(config, "position_embedding_type", "absolute") == "absolute"
                and type(model).__name__.endswith("ForSequenceClassification")
                and all(hasattr(attention, a) for a in ("query", "key", "value", "num_attention_heads",
                                                        "attention_head_size", "dropout"))
                and hasattr(layer.attention, "output") and hasattr(layer, "feed_forward_chunk"))  # fmt: skip

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, *_, **__):
        attention = self.layer.attention
        head = attention.self
        rows, width, _ = hidden_states.shape
        n, size = head.num_attention_heads, head.attention_head_size
        first = hidden_states[:, :1]
        query = head.query(first).view(rows, 1, n, size).transpose(1, 2)
        key = head.key(hidden_states).view(rows, width, n, size).transpose(1, 2)
        value = head.value(hidden_states).view(rows, width, n, size).transpose(1, 2)
        if attention_mask is not None and attention_mask.dim() == 4:
            attention_mask = attention_mask[:, :, :1, :]
        context = torch.nn.functional.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, dropout_p=head.dropout.p if self.training else 0.0,
            scale=size**-0.5)  # fmt: skip
        context = context.transpose(1, 2).reshape(rows, 1, n * size)
        return self.layer.feed_forward_chunk(attention.output(context, first))


def top_view(model: torch.nn.Module, cut: int) -> torch.nn.Module:
    """``model`` from layer ``cut`` up: ``view(inputs_embeds=states, attention_mask=mask).logits``; the last layer a
    :class:`FirstTokenLayer` where the model's head reads only the first token."""
    layers = list(_layers(model)[1][cut:])
    if layers and FirstTokenLayer.fits(model, layers[-1]):
        layers[-1] = FirstTokenLayer(layers[-1])
    return _with_layers(model, layers, passthrough=True)


def pad(states: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(states padded with zeros to the longest, attention mask) of per-text ``[length, hidden]`` states."""
    width = max(len(s) for s in states)
    out = torch.zeros((len(states), width, states[0].shape[-1]), dtype=states[0].dtype)
    mask = torch.zeros((len(states), width), dtype=torch.long)
    for row, s in enumerate(states):
        out[row, : len(s)] = s
        mask[row, : len(s)] = 1
    return out, mask


def compute(model: torch.nn.Module, input_ids: Sequence[Sequence[int]], cut: int, *, pad_id: int = 0,
            batch_size: int = 64, bf16: bool = False) -> list[torch.Tensor]:  # fmt: skip
    """The trunk's output (float32, ``[length, hidden]`` per text, in input order), batched by length, eval mode."""
    base, layers = _layers(model)
    trunk = _with_layers(base, list(layers[:cut]), passthrough=False)
    device = next(model.parameters()).device
    out: list[torch.Tensor | None] = [None] * len(input_ids)
    modes = [(m, m.training) for m in frozen_modules(model, cut)]
    for m, _ in modes:
        m.eval()
    try:
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            for chunk, ids, mask in padded_batches(input_ids, batch_size, pad_id):
                hidden = trunk(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
                for row, i in enumerate(chunk):
                    out[i] = hidden[row, : len(input_ids[i])].float().cpu().clone()
    finally:
        for m, mode in modes:
            m.train(mode)
    return out  # type: ignore[return-value]


class TrunkCache:
    """Trunk outputs by key: in this process (least recently used out past ``max_bytes``) and in ``folder``."""

    def __init__(self, folder: Path | None, max_bytes: int = MEMORY_BYTES, disk_bytes: int = 2048 << 20):
        self.folder, self.max_bytes, self.disk_bytes = folder, max_bytes, disk_bytes
        self._memory: OrderedDict[str, list[torch.Tensor]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    @staticmethod
    def _size(states: list[torch.Tensor]) -> int:
        return sum(s.numel() * s.element_size() for s in states)

    def _path(self, k: str) -> Path | None:
        return self.folder / f"{k}.safetensors" if self.folder else None

    def get(self, k: str) -> list[torch.Tensor] | None:
        with self._lock:
            if k in self._memory:
                self._memory.move_to_end(k)
                self.hits += 1
                return self._memory[k]
        path = self._path(k)
        if path is not None and path.exists():
            from safetensors.torch import load_file

            try:
                loaded = load_file(str(path))
            except Exception as exc:  # noqa: BLE001 - a torn or foreign file: computed again
                log.warning("trunk cache file %s unreadable (%s): computing it again", path, exc)
                return None
            states = [loaded[str(i)] for i in range(len(loaded))]
            self._remember(k, states)
            self.hits += 1
            return states
        self.misses += 1
        return None

    def put(self, k: str, states: list[torch.Tensor]) -> None:
        self._remember(k, states)
        path = self._path(k)
        if path is None:
            return
        from safetensors.torch import save_file

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            save_file({str(i): s.contiguous() for i, s in enumerate(states)}, str(tmp))
            os.replace(tmp, path)
            self._prune()
        except OSError as exc:  # a read-only or full disk: the in-memory copy still serves this process
            log.warning("trunk cache not written to %s (%s)", path, exc)

    def _remember(self, k: str, states: list[torch.Tensor]) -> None:
        with self._lock:
            self._memory[k] = states
            self._memory.move_to_end(k)
            while len(self._memory) > 1 and sum(map(self._size, self._memory.values())) > self.max_bytes:
                self._memory.popitem(last=False)

    def _prune(self) -> None:
        files = sorted(self.folder.glob("*.safetensors"), key=lambda f: f.stat().st_mtime)
        total = sum(f.stat().st_size for f in files)
        for f in files[:-1]:
            if total <= self.disk_bytes:
                break
            total -= f.stat().st_size
            f.unlink(missing_ok=True)

    def clear(self) -> None:
        """Forget the in-process copies (the disk cache stays)."""
        with self._lock:
            self._memory.clear()


def _default_folder() -> Path | None:
    setting = os.environ.get("ROSE_TRUNK_CACHE", "")
    if setting.lower() == "off":
        return None
    if setting:
        return Path(setting).expanduser()
    home = os.environ.get("ROSE_HOME") or Path.home() / ".cache" / "rose"
    return Path(home) / "trunk"


_CACHE: TrunkCache | None = None


def cache() -> TrunkCache:
    """This process's trunk cache (its folder read from the environment on first use)."""
    global _CACHE
    if _CACHE is None:
        _CACHE = TrunkCache(_default_folder(), disk_bytes=int(os.environ.get("ROSE_TRUNK_CACHE_MB", "2048")) << 20)
    return _CACHE


def states(model: torch.nn.Module, input_ids: Sequence[Sequence[int]], cut: int, *, base_digest: str,
           max_length: int, pad_id: int = 0, bf16: bool = False, store: TrunkCache | None = None,
           batch_size: int = 64) -> list[torch.Tensor]:  # fmt: skip
    """The trunk's output for ``input_ids``: from the cache, else computed with ``model`` and cached."""
    store = store or cache()
    k = key(base_digest, cut, input_ids, max_length, bf16)
    found = store.get(k)
    if found is not None:
        return found
    computed = compute(model, input_ids, cut, pad_id=pad_id, batch_size=batch_size, bf16=bf16)
    store.put(k, computed)
    return computed


def probabilities(trunk_model: torch.nn.Module, model: torch.nn.Module, tokenizer, texts: Sequence[str], cut: int, *,
                  base_digest: str, max_length: int, store: TrunkCache | None = None, batch_size: int = 64,
                  rows: Sequence[int] | None = None):  # fmt: skip
    """Class probabilities (numpy, input order, float32) of ``texts`` by ``model`` above the frozen trunk of
    ``trunk_model`` (the same modules below ``cut``): the trunk's output from the cache, the top layers run in eval
    mode. How a trained seed scores its dev split and evaluation sets, and how a cell scores a logged seed model:
    equal to the full model's forward pass in fp32 (tests/test_trunk.py). With ``rows``, only those texts are
    scored (in that order), the trunk's output still read or cached for the whole set: a seed's dev split shares
    its training set's entry with the other seeds (and, training in fp32, with the training itself)."""
    from rose.train.normalize import model_inputs

    texts = model_inputs(model, texts)  # a classifier trained on normalised texts reads them normalised
    ids = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False)["input_ids"]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    found = states(trunk_model, ids, cut, base_digest=base_digest, max_length=max_length, pad_id=pad_id, store=store,
                   batch_size=batch_size)  # fmt: skip
    if rows is not None:
        found = [found[i] for i in rows]
    return top_logits(top_view(model, cut), found, batch_size=batch_size).softmax(dim=-1).numpy()


def top_logits(view: torch.nn.Module, states: Sequence[torch.Tensor], *, batch_size: int = 64,
               bf16: bool = False) -> torch.Tensor:  # fmt: skip
    """Logits (float32, input order) of the top layers and head on cached trunk states, in eval mode."""
    device = next(view.parameters()).device
    order = sorted(range(len(states)), key=lambda i: len(states[i]))
    out = torch.zeros((len(states), view.config.num_labels), dtype=torch.float32)
    was = view.training
    view.eval()
    try:
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                hidden, mask = pad([states[i] for i in chunk])
                logits = view(inputs_embeds=hidden.to(device), attention_mask=mask.to(device)).logits
                out[chunk] = logits.float().cpu()
    finally:
        view.train(was)
    return out
