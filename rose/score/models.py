"""Facts about models that score needs: how many parameters a generator has, which languages a reference LM reads,
and the reference LM itself (token log-likelihoods for perplexity).

Parameter counts are counted where the weights are at hand (safetensors headers, with GPTQ/AWQ packing undone;
GGUF tensor shapes), else read from a table of known hub models, else from a size in the name (``...-4b-it``).
A reference LM's languages come from :data:`REFERENCE_LM_LANGUAGES` (or the caller): perplexity is only computed
for a language the LM reads, never from a model that cannot read the text.
"""

from __future__ import annotations

import json
import logging
import os
import re
import struct
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from rose.languages import STUDY_LANGUAGES

log = logging.getLogger(__name__)

# Parameter counts of hub generators whose weights are not at hand (the model cards' counts).
KNOWN_PARAMETERS = {
    "gemma-3-270m": 2.68e8, "gemma-3-270m-it": 2.68e8, "gemma-3-1b-it": 1.0e9, "gemma-3-4b-it": 4.30e9,
    "gemma-3-12b-it": 1.22e10, "gemma-3-27b-it": 2.74e10, "meta-llama-3-8b-instruct": 8.03e9,
    "meta-llama-3-70b-instruct": 7.06e10, "meta-llama-3-70b-instruct-gptq": 7.06e10, "llama-3.1-8b-instruct": 8.03e9,
    "llama-3.3-70b-instruct": 7.06e10, "smollm2-135m-instruct": 1.35e8, "qwen2.5-7b-instruct": 7.62e9,
    "mistral-7b-instruct-v0.3": 7.25e9, "aya-expanse-8b": 8.03e9,
}  # fmt: skip
_SIZE = re.compile(r"(?<![a-z0-9.])(\d+(?:\.\d+)?)\s*([mbt])(?![a-z])", re.I)
_PACKED = (".qweight",)  # GPTQ / AWQ: 32 // bits weights per int32
_QUANT_AUX = (".qzeros", ".scales", ".g_idx")  # quantisation bookkeeping, not parameters of the model

XGLM = ("en", "ru", "zh", "de", "es", "fr", "ja", "it", "pt", "el", "ko", "fi", "id", "tr", "ar", "vi", "th", "bg",
        "ca", "hi", "et", "bn", "ta", "ur", "sw", "te", "eu", "my", "ht", "qu")  # fmt: skip  # Lin et al. 2022
# Languages each known reference LM reads (ISO 639-1). SmolLM2 was trained on English only; XGLM on the 30
# languages of its paper; Gemma 3 (model card: "over 140 languages", no list published) is taken to read the
# study's eleven only (no other language is claimed for it: declare more with --reference-lm-languages); Llama 3.1
# on its eight supported languages. A language in no list gets no perplexity, and score says so.
REFERENCE_LM_LANGUAGES: dict[str, tuple[str, ...]] = {
    "smollm2-135m-instruct": ("en",), "smollm2-135m": ("en",), "smollm2-360m-instruct": ("en",),
    "smollm2-360m": ("en",), "smollm2-1.7b-instruct": ("en",), "smollm2-1.7b": ("en",),
    "gemma-3-270m": STUDY_LANGUAGES, "gemma-3-270m-it": STUDY_LANGUAGES, "gemma-3-1b-pt": STUDY_LANGUAGES,
    "gemma-3-1b-it": STUDY_LANGUAGES, "gemma-3-4b-it": STUDY_LANGUAGES, "gemma-3-4b-pt": STUDY_LANGUAGES,
    "xglm-564m": XGLM, "xglm-1.7b": XGLM, "xglm-2.9b": XGLM, "xglm-4.5b": XGLM, "xglm-7.5b": XGLM,
    "llama-3.1-8b": ("en", "de", "fr", "it", "pt", "hi", "es", "th"),
    "llama-3.1-8b-instruct": ("en", "de", "fr", "it", "pt", "hi", "es", "th"),
}  # fmt: skip


def _base_name(model: str) -> str:
    name = model.rstrip("/").split("/")[-1].lower()
    return name.removesuffix(".gguf")


# ---- parameter counts --------------------------------------------------------------------------------------------


def generator_parameters(generator: str) -> float | None:
    """Parameter count of a generator: counted from the weights of a local folder, a ``.gguf`` file or a built rose
    asset; else the table of known hub models; else a size in its name (``...-4b-it`` -> 4e9). None when unknown."""
    for path in _local_weights(generator):
        counted = count_parameters(path)
        if counted:
            return counted
    base = _base_name(generator)
    if base in KNOWN_PARAMETERS:
        return KNOWN_PARAMETERS[base]
    sizes = [float(v) * {"m": 1e6, "b": 1e9, "t": 1e12}[u.lower()] for v, u in _SIZE.findall(base)]
    return max(sizes) if sizes else None


def _local_weights(generator: str) -> list[Path]:
    path = Path(generator).expanduser()
    if path.exists():
        return [path]
    try:  # a rose short name whose folder is already built (never built here)
        from rose.assets import resolve_model

        found = Path(resolve_model(generator, fetch_missing=False))
        return [found] if found.exists() else []
    except Exception:  # noqa: BLE001 - not an asset, or not built: the table and the name still answer
        return []


def count_parameters(path: Path) -> float | None:
    """Parameters in a folder's safetensors files (GPTQ/AWQ packed weights unpacked) or in GGUF files."""
    files = _weight_files(path) if path.is_dir() else [path]
    bits = _quant_bits(path if path.is_dir() else path.parent)
    total = 0
    for f in files:
        if f.suffix == ".safetensors":
            with f.open("rb") as fh:
                header = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
            for key, value in header.items():
                if key == "__metadata__" or key.endswith(_QUANT_AUX):
                    continue
                n = _prod(value["shape"])
                total += n * (32 // bits) if key.endswith(_PACKED) else n
        elif f.suffix == ".gguf":
            from gguf import GGUFReader

            total += sum(int(t.n_elements) for t in GGUFReader(str(f)).tensors)
    return float(total) or None


def _weight_files(folder: Path) -> list[Path]:
    """The files that together hold a model once: the transformers shards (not a second ``consolidated`` copy),
    else one GGUF file (or all parts of a split one)."""
    shards = sorted(folder.glob("model*.safetensors")) or sorted(folder.glob("*.safetensors"))
    if shards:
        return shards
    ggufs = sorted(folder.glob("*.gguf"))
    if not ggufs:
        return []
    split = re.match(r"(.*)-\d{5}-of-\d{5}\.gguf$", ggufs[0].name)
    return [g for g in ggufs if g.name.startswith(split.group(1))] if split else ggufs[:1]


def _prod(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _quant_bits(folder: Path) -> int:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return 4
    return int((config.get("quantization_config") or {}).get("bits", 4))


# ---- the reference LM --------------------------------------------------------------------------------------------


def reference_lm_languages(name: str, declared: Collection[str] = ()) -> frozenset[str]:
    """The languages reference LM ``name`` reads: ``declared`` when given, else the table's; empty when unknown."""
    if declared:
        return frozenset(declared)
    return frozenset(REFERENCE_LM_LANGUAGES.get(_base_name(name), ()))


@dataclass
class ReferenceLM:
    """A causal LM for perplexity and the languages it reads; :meth:`reads` decides whether it may score a text."""

    name: str
    languages: frozenset[str]
    nll: Callable[[list[str]], tuple[list[float], list[int]]]

    def reads(self, language: str) -> bool:
        return language in self.languages


def reference_lm_dtype(setting: str = "auto") -> str:
    """The reference LM's dtype for ``setting``: ``auto`` is ``bfloat16`` where the CPU computes it natively
    (:func:`rose.devices.bf16_supported`; the reference LM runs on the CPU), else ``float32``.

    On the 2-core development CPU (AVX512-BF16) gemma-3-270m scored 60 of the demo's texts 3.9x faster in bfloat16,
    at a perplexity 0.13% from float32's (14.479 against 14.460; per text at most 1.8%)."""
    if setting != "auto":
        return setting
    from rose.devices import cpu_has_native_bf16

    return "bfloat16" if cpu_has_native_bf16() else "float32"


def load_reference_lm(name: str, languages: Collection[str] = (), batch: int = 8, max_tokens: int = 128,
                      dtype: str = "float32") -> ReferenceLM:  # fmt: skip
    """Load ``name`` (short name, hub id, folder or .gguf file) as a :class:`ReferenceLM`, its weights in ``dtype``
    (``float32`` or ``bfloat16``: see :func:`reference_lm_dtype`)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rose.assets import resolve_model

    path = Path(resolve_model(name))
    kwargs = {"gguf_file": path.name} if path.suffix == ".gguf" else {}
    where = str(path.parent) if kwargs else str(path)
    tok = AutoTokenizer.from_pretrained(where, **kwargs)
    if dtype != "float32" and not kwargs and path.is_dir():
        where = str(converted(path, dtype))  # read as it is stored: no float32 copy in memory
    model = AutoModelForCausalLM.from_pretrained(where, **kwargs).eval()
    if model.dtype != getattr(torch, dtype):  # a GGUF file or a hub id: converted after loading
        model = model.to(getattr(torch, dtype))
    nll = lambda texts: token_nll(texts, model, tok, batch=batch, max_tokens=max_tokens)  # noqa: E731
    return ReferenceLM(name, reference_lm_languages(name, languages), nll)


def converted(folder: Path, dtype: str) -> Path:
    """A copy of the causal LM in ``folder`` with its weights stored in ``dtype``, made once under
    ``$ROSE_HOME/converted/<digest of the weights>-<dtype>`` (the folder itself when they already are).

    Loading it maps the file as it is stored: gemma-3-270m's resident memory stays at its 0.54 GB of bfloat16
    weights, where converting a float32 copy after loading peaked at 1.9 GB (2.3 GB cast while read)."""
    import shutil

    import torch
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    from rose.assets.home import rose_home
    from rose.content import file_digest, short

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return folder
    with safe_open(str(files[0]), "pt") as f:
        first = next(iter(f.keys()), None)
        if first is None or f.get_slice(first).get_dtype() == {"bfloat16": "BF16", "float32": "F32"}.get(dtype):
            return folder
    digest = short(file_digest(files[0]) if len(files) == 1 else file_digest(folder), 24)
    out = rose_home() / "converted" / f"{digest}-{dtype}"
    if (out / "config.json").exists():
        _copy_beside(folder, out)  # a rebuilt asset's tokenizer files (same weights, so the same folder)
        return out
    log.info("storing %s in %s under %s (once)", folder.name, dtype, out)
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model = AutoModelForCausalLM.from_pretrained(str(folder)).to(getattr(torch, dtype))
    model.save_pretrained(str(tmp))
    del model
    _copy_beside(folder, tmp)
    try:
        tmp.rename(out)
    except OSError:  # another process stored it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    return out


_WRITTEN_WITH_WEIGHTS = ("config.json", "generation_config.json")  # save_pretrained's own, in the new dtype


def _copy_beside(source: Path, target: Path) -> None:
    """Copy the tokenizer and the other small files beside ``source``'s weights into ``target`` where missing or
    changed (size or modification time; copies keep the time), each replaced in one step."""
    import shutil

    for f in source.iterdir():
        if not f.is_file() or f.suffix == ".safetensors" or f.name in _WRITTEN_WITH_WEIGHTS:
            continue
        dst, st = target / f.name, f.stat()
        have = dst.stat() if dst.is_file() else None
        if have and (have.st_size, have.st_mtime_ns) == (st.st_size, st.st_mtime_ns):
            continue
        tmp = dst.with_name(f"{dst.name}.{os.getpid()}.tmp")
        shutil.copy2(f, tmp)
        tmp.replace(dst)


def token_nll(
    texts: list[str], model, tok, *, batch: int = 8, max_tokens: int = 128, token_budget: int = 256
) -> tuple[list[float], list[int]]:
    """Per text: the summed negative log-likelihood of its tokens after the first, and how many were scored.

    Texts go through the model in batches of at most ``batch`` rows and ``token_budget`` padded tokens, similar
    lengths together: the logits (tokens x vocabulary, 262k for gemma-3) are what costs memory, 0.27 GB at 256
    tokens against 3 GB for 8 rows of 128 with a log-softmax copy (the demo's score peaked at 4.6 GB that way).
    """
    import torch
    import torch.nn.functional as F

    bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
    ids = [(bos + tok(t, add_special_tokens=False)["input_ids"])[:max_tokens] for t in texts]
    order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
    groups, group = [], []
    for i in order:  # ascending lengths: the newest row is the widest
        if group and (len(group) >= batch or (len(group) + 1) * len(ids[i]) > token_budget):
            groups.append(group)
            group = []
        group.append(i)
    if group:
        groups.append(group)
    sums, counts = [0.0] * len(texts), [0] * len(texts)
    with torch.no_grad():
        for group in groups:
            width = max(len(ids[i]) for i in group)
            x = torch.tensor([ids[i] + [0] * (width - len(ids[i])) for i in group])
            mask = torch.tensor([[1] * len(ids[i]) + [0] * (width - len(ids[i])) for i in group])
            logits = model(input_ids=x, attention_mask=mask).logits
            for row, i in enumerate(group):
                n = len(ids[i])
                if n > 1:
                    sums[i] = float(F.cross_entropy(logits[row, : n - 1].float(), x[row, 1:n], reduction="sum"))
                counts[i] = n - 1
    return sums, counts
