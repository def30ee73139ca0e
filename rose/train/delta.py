"""A fine-tuned classifier's files without MLflow: what training changed (a delta against its base model, named by
content digest) or the whole model, and loading either back. :mod:`rose.train.pyfunc` wraps these folders as an
MLflow pyfunc model; training itself (:mod:`rose.train.fit`) needs only this module, so it starts without importing
MLflow.

The ``delta`` layout (every seed): ``delta.safetensors`` (changed tensors in full, and for a matrix of which few rows
changed, such as the word embeddings, just those rows), the model config with the label names, and ``base.json``
naming the base model by id, path and content digest (sha256 of its weight files). Loading rebuilds the full model,
and takes the tokenizer, from the base, and refuses a base whose digest differs. The ``full`` layout (the registered
model) is the whole fine-tuned model folder, so it serves where the base was never seen.
"""

from __future__ import annotations

import json
from pathlib import Path

from rose.assets.tokenizer import save_tokenizer
from rose.content import file_digest, files_digest

DELTA_FILE = "delta.safetensors"
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "model*.bin")


class BaseModelError(RuntimeError):
    """The base model of a delta artifact is missing or is not the one the classifier was trained on."""


def weight_files(folder: str | Path) -> list[Path]:
    """The files holding a model folder's weights (safetensors first)."""
    for pattern in WEIGHT_PATTERNS:
        files = sorted(Path(folder).glob(pattern))
        if files:
            return files
    return []


def base_digest(folder: str | Path) -> str:
    """The content digest of a model folder's weight files (:mod:`rose.content`): one file's own digest, or for
    a sharded model the digest of its weight files (relative paths and bytes)."""
    files = weight_files(folder)
    if not files:
        raise BaseModelError(f"no weight files (*.safetensors, pytorch_model*.bin) in {folder}")
    return file_digest(files[0]) if len(files) == 1 else files_digest(folder, files)


def resolve_base(base_id: str, recorded_path: str = "", digest: str | None = None) -> Path:
    """The local folder of a delta classifier's base model, with ``digest`` when given.

    Looked for in order: the path recorded when the classifier was trained, then ``base_id`` as a local folder or
    a rose offline model (built if missing), then, for a hub id only, the Hugging Face hub. The first folder whose
    weights have ``digest`` wins. Raises :class:`BaseModelError` naming every place tried and what it found.
    """
    from rose.assets import resolve_model
    from rose.errors import RoseError
    from rose.locations import is_hub_id

    tried: list[str] = []
    mismatch: list[str] = []

    def check(path: Path) -> bool:
        found = base_digest(path)
        if digest is None or found == digest:
            return True
        mismatch.append(f"{path} has digest {found}")
        return False

    places = [Path(recorded_path).expanduser()] if recorded_path else []
    try:
        places.append(Path(resolve_model(base_id)))
    except RoseError as exc:
        tried.append(str(exc))
    for path in dict.fromkeys(places):  # in order, each once
        if path.is_dir():
            if check(path):
                return path
        elif str(path) != base_id:
            tried.append(f"{path} does not exist")
    if is_hub_id(base_id) and not Path(base_id).expanduser().exists():
        hub = _from_hub(base_id, tried)
        if hub is not None and check(hub):
            return hub
    if mismatch:
        raise BaseModelError(f"base model {base_id!r}: {'; '.join(mismatch)}, but this classifier was trained on "
                             f"{digest}: refusing to combine them")  # fmt: skip
    raise BaseModelError(f"base model {base_id!r} is not available here ({'; '.join(tried) or 'nowhere to look'}): "
                         "fetch it, or use the registered self-contained model")  # fmt: skip


def _from_hub(hub_id: str, tried: list[str]) -> Path | None:
    """A snapshot of a hub model's weights and tokenizer files, or None (why, added to ``tried``)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    try:
        return Path(snapshot_download(hub_id, allow_patterns=["*.json", "*.safetensors", "*.bin", "*.model", "*.txt"]))
    except (OSError, ValueError, HfHubHTTPError) as exc:  # offline, unknown id, gated: said, not hidden
        tried.append(f"the hub: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}")
        return None


def delta_state(model, reference: dict, always: set[str] = frozenset()) -> dict:
    """Tensors of ``model`` that differ from ``reference``: ``full::<name>`` or ``rows::<name>::index|values``."""
    import torch

    out = {}
    for name, value in model.state_dict().items():
        value = value.detach().cpu()
        base = reference.get(name)
        if name in always or base is None or base.shape != value.shape:
            out[f"full::{name}"] = value.clone().contiguous()
        elif torch.equal(base, value):
            continue
        elif value.ndim == 2 and (changed := (base != value).any(dim=1).nonzero().flatten()).numel() < len(value) / 2:
            out[f"rows::{name}::index"] = changed.clone()
            out[f"rows::{name}::values"] = value[changed].clone().contiguous()
        else:
            out[f"full::{name}"] = value.clone().contiguous()
    return out


def apply_delta(model, tensors: dict) -> None:
    """Write a :func:`delta_state` into ``model`` in place."""
    import torch

    state = model.state_dict()
    with torch.no_grad():
        for key, value in tensors.items():
            kind, name, *part = key.split("::")
            if kind == "full":
                state[name].copy_(value)
            elif part == ["values"]:
                state[name][tensors[f"rows::{name}::index"]] = value.to(state[name].dtype)


def save_delta(folder: Path, model, *, reference: dict, always: set[str], base_id: str,
               base_path: Path, digest: str, max_length: int) -> Path:  # fmt: skip
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file(delta_state(model, reference, always), str(folder / DELTA_FILE))
    model.config.save_pretrained(folder)  # the tokenizer is the base's own: loaded from the base folder
    (folder / "base.json").write_text(json.dumps({"id": base_id, "path": str(base_path), "digest": digest}, indent=1))
    _write_meta(folder, "delta", model, max_length)
    return folder


def save_full(folder: Path, model, tokenizer, *, max_length: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    save_tokenizer(tokenizer, folder)
    _write_meta(folder, "full", model, max_length)
    return folder


def _write_meta(folder: Path, layout: str, model, max_length: int) -> None:
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    meta = {"layout": layout, "labels": labels, "max_length": max_length}
    (folder / "meta.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False))


def load_classifier(folder: str | Path):
    """(model, tokenizer, label names, max length) from a ``classifier`` folder of either layout."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    if meta["layout"] == "full":
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForSequenceClassification.from_pretrained(folder)
    else:
        from safetensors.torch import load_file

        base = json.loads((folder / "base.json").read_text())
        path = resolve_base(base["id"], base.get("path", ""), base["digest"])
        tokenizer = AutoTokenizer.from_pretrained(path)
        config = AutoConfig.from_pretrained(folder)
        model = AutoModelForSequenceClassification.from_pretrained(path, config=config)
        apply_delta(model, load_file(str(folder / DELTA_FILE)))
    model.eval()
    return model, tokenizer, meta["labels"], meta["max_length"]
