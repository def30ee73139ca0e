"""Turn a GGUF causal LM into a plain transformers folder (config, tokenizer, float32 safetensors).

transformers can load a GGUF directly (``from_pretrained(dir, gguf_file=...)``), but for the architectures used
here (llama, gemma3) its loader parses the file's metadata with ``gguf.GGUFReader`` once for the config and once
for the weights, and that reader walks the 50k-260k token vocabulary element by element (17 s per pass for
gemma-3-270m). This module builds the same model with transformers' own pieces, parsing the file once:

- metadata and tensor table: a small reader here (string arrays are skipped, not decoded),
- config: transformers' GGUF-to-config key mapping (``GGUF_TO_TRANSFORMERS_MAPPING``),
- weights: ``gguf.quants.dequantize`` + transformers' per-architecture tensor processors (llama q/k
  un-permutation, gemma's ``norm - 1``) + gguf's tensor-name map,
- tokenizer: ``PreTrainedTokenizerFast.from_pretrained(dir, gguf_file=...)``, i.e. transformers' GGUF tokenizer
  conversion (the same backend ``AutoTokenizer`` builds) without ``AutoTokenizer``'s legacy metadata pass; it is
  saved as a generic fast tokenizer, so reloading it uses the ``tokenizer.json`` verbatim.

Only :func:`build_gguf_folder` is meant to be called from outside; it is used by :mod:`rose.assets`.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path
from typing import Any, NamedTuple

from rose.assets.tokenizer import save_tokenizer

log = logging.getLogger(__name__)

# what transformers' legacy GGUF loader renames (see modeling_gguf_pytorch_utils.load_gguf_checkpoint)
_MODEL_TYPE_FIXES = {"gemma3": "gemma3_text"}
_DROP_CONFIG_KEYS = {"_model_name_or_path"}


def gguf_config_dict(metadata: dict[str, Any], tensor_names: tuple[str, ...]) -> dict[str, Any]:
    """The transformers config dict for a GGUF file's metadata, as transformers' GGUF loader makes it."""
    from transformers.integrations.ggml import GGUF_CONFIG_DEFAULTS_MAPPING
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES, GGUF_TO_TRANSFORMERS_MAPPING

    arch = metadata["general.architecture"]
    if arch not in GGUF_SUPPORTED_ARCHITECTURES:
        raise ValueError(f"GGUF architecture {arch!r} is not supported by this transformers version")
    renames = GGUF_TO_TRANSFORMERS_MAPPING["config"]
    config: dict[str, Any] = dict(GGUF_CONFIG_DEFAULTS_MAPPING.get(arch) or {})
    config["tie_word_embeddings"] = "output.weight" not in tensor_names
    for key, value in metadata.items():
        prefix, _, rest = key.partition(".")
        target = renames.get(prefix, {}).get(rest)
        if target not in (None, -1):
            config[target] = value
    config["model_type"] = _MODEL_TYPE_FIXES.get(config["model_type"], config["model_type"])
    if "vocab_size" not in config and isinstance(metadata.get("tokenizer.ggml.tokens"), int):
        config["vocab_size"] = metadata["tokenizer.ggml.tokens"]  # the fast reader leaves the vocabulary as a count
    for key in _DROP_CONFIG_KEYS:
        config.pop(key, None)
    return config


class GgufTensor(NamedTuple):
    """One tensor of a GGUF file: its name, torch-order shape, ggml type and raw bytes (a memory-map view)."""

    name: str
    shape: tuple[int, ...]
    ggml_type: int
    data: Any


_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def _read_str(buf: Any, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<Q", buf, pos)
    return bytes(buf[pos + 8 : pos + 8 + n]).decode("utf-8"), pos + 8 + n


def _read_value(buf: Any, pos: int, vtype: int) -> tuple[Any, int]:
    """A metadata value; arrays of strings are returned as their length (they are not needed here)."""
    if vtype in _SCALARS:
        fmt = _SCALARS[vtype]
        return struct.unpack_from(fmt, buf, pos)[0], pos + struct.calcsize(fmt)
    if vtype == 8:
        return _read_str(buf, pos)
    if vtype != 9:
        raise ValueError(f"unknown GGUF metadata type {vtype}")
    etype, count = struct.unpack_from("<IQ", buf, pos)
    pos += 12
    if etype in _SCALARS:
        fmt = _SCALARS[etype]
        return list(struct.unpack_from(f"<{count}{fmt[1]}", buf, pos)), pos + count * struct.calcsize(fmt)
    for _ in range(count):
        _, pos = _read_value(buf, pos, etype)
    return count, pos


def read_gguf(path: Path) -> tuple[dict[str, Any], list[GgufTensor]]:
    """``(metadata, tensors)`` of a GGUF v2/v3 file; tensor data stays memory-mapped until used."""
    import numpy as np
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    buf = np.memmap(path, mode="r", dtype=np.uint8)
    magic, version, n_tensors, n_kv = struct.unpack_from("<4sIQQ", buf, 0)
    if magic != b"GGUF" or version not in (2, 3):
        raise ValueError(f"{path} is not a GGUF v2/v3 file")
    pos, metadata = 24, {}
    for _ in range(n_kv):
        key, pos = _read_str(buf, pos)
        (vtype,) = struct.unpack_from("<I", buf, pos)
        metadata[key], pos = _read_value(buf, pos + 4, vtype)
    table = []
    for _ in range(n_tensors):
        name, pos = _read_str(buf, pos)
        (ndim,) = struct.unpack_from("<I", buf, pos)
        dims = struct.unpack_from(f"<{ndim}Q", buf, pos + 4)
        ggml_type, offset = struct.unpack_from("<IQ", buf, pos + 4 + 8 * ndim)
        pos += 4 + 8 * ndim + 12
        table.append((name, tuple(reversed(dims)), ggml_type, offset))
    align = metadata.get("general.alignment", 32)
    start = (pos + align - 1) // align * align
    tensors = []
    for name, shape, ggml_type, offset in table:
        block, size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
        nbytes = int(np.prod(shape)) // block * size
        row_bytes = shape[-1] // block * size
        data = buf[start + offset : start + offset + nbytes].reshape(*shape[:-1], row_bytes)
        tensors.append(GgufTensor(name, shape, ggml_type, data))
    return metadata, tensors


def _dequantized(tensor: GgufTensor) -> Any:
    """One GGUF tensor as a float32 numpy array in torch's (row-major) shape."""
    import numpy as np
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize

    qtype = GGMLQuantizationType(tensor.ggml_type)
    data = np.asarray(tensor.data)
    if qtype == GGMLQuantizationType.F32:
        return data.view(np.float32).reshape(tensor.shape)
    return dequantize(data, qtype).astype(np.float32, copy=False).reshape(tensor.shape)


def _name_map(model: Any, arch: str) -> dict[str, str]:
    """``{gguf tensor name: transformers parameter name}`` from gguf's tensor-name table."""
    from gguf import MODEL_ARCH_NAMES, get_tensor_name_map

    arch_id = next(k for k, v in MODEL_ARCH_NAMES.items() if v == arch)
    table = get_tensor_name_map(arch_id, model.config.num_hidden_layers)
    mapping = {}
    for hf_name in model.state_dict():
        base, _, suffix = hf_name.rpartition(".")
        gguf_name = table.get_name(base)
        if gguf_name is not None:
            mapping[f"{gguf_name}.{suffix}"] = hf_name
    return mapping


def gguf_state_dict(tensors: list[GgufTensor], arch: str, model: Any, config_dict: dict[str, Any]) -> dict[str, Any]:
    """The file's tensors dequantized to float32 torch tensors under transformers' parameter names."""
    import numpy as np
    import torch
    from transformers.modeling_gguf_pytorch_utils import TENSOR_PROCESSORS, TensorProcessor

    processor = TENSOR_PROCESSORS.get(arch, TensorProcessor)(config=config_dict)
    mapping = _name_map(model, arch)
    state, unmapped = {}, []
    for tensor in tensors:
        result = processor.process(weights=_dequantized(tensor), name=tensor.name, tensor_key_mapping=mapping,
                                   parsed_parameters={"tensors": state})  # fmt: skip
        if result.name not in mapping:
            unmapped.append(tensor.name)
            continue
        state[mapping[result.name]] = torch.from_numpy(np.array(result.weights, dtype=np.float32))
    if unmapped:
        log.warning("GGUF tensors with no transformers parameter (ignored): %s", ", ".join(unmapped))
    return state


def _build_model(gguf_path: Path) -> Any:
    """A float32 ``AutoModelForCausalLM`` holding the GGUF's dequantized weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    metadata, tensors = read_gguf(gguf_path)
    config_dict = gguf_config_dict(metadata, tuple(t.name for t in tensors))
    config = AutoConfig.for_model(**config_dict)
    config.dtype = torch.float32
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    state = gguf_state_dict(tensors, metadata["general.architecture"], model, config_dict)
    _, unexpected = model.load_state_dict(state, strict=False, assign=True)
    model.tie_weights()
    still_meta = [n for n, p in model.named_parameters() if p.is_meta]
    if still_meta or unexpected:
        raise ValueError(f"{gguf_path.name}: parameters not filled from the GGUF: {still_meta or unexpected}")
    return model


def _build_tokenizer(gguf_path: Path, chat_template: bool, max_length: int) -> Any:
    """The GGUF's tokenizer (fast), with or without its chat template."""
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    tokenizer.model_max_length = max_length
    if not chat_template:
        tokenizer.chat_template = None
    elif not tokenizer.chat_template:
        raise ValueError(f"{gguf_path.name} has no chat template, but the asset is declared a chat model")
    return tokenizer


def build_gguf_folder(gguf_path: Path, out_dir: Path, *, chat_template: bool) -> None:
    """Write a ready transformers folder for a GGUF causal LM into ``out_dir`` (which must exist).

    Weights are dequantized to float32 (CPU-friendly: no bf16 emulation, memory-mapped loads). A base model
    (``chat_template=False``) is saved without any chat template, so :func:`rose.assets.is_chat_model` is False.
    """
    model = _build_model(gguf_path)
    tokenizer = _build_tokenizer(gguf_path, chat_template, model.config.max_position_embeddings)
    model.save_pretrained(out_dir)
    save_tokenizer(tokenizer, out_dir)
    if not chat_template:
        (out_dir / "chat_template.jinja").unlink(missing_ok=True)
