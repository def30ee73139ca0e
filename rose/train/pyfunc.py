"""A fine-tuned classifier as an MLflow pyfunc model: texts in, labels and probabilities out.

Two layouts of the ``classifier`` artifact (``meta.json`` says which):

- ``delta`` (every seed): only what training changed (``delta.safetensors``: changed tensors in full, and for a
  matrix of which few rows changed, such as the word embeddings, just those rows), the model config with the
  label names, and ``base.json`` naming the base model by id, path and content digest (sha256 of its weight
  files). Loading rebuilds the full model, and takes the tokenizer, from the base, and refuses a base whose
  digest differs.
- ``full`` (the registered model): the whole fine-tuned model folder, so it serves where the base was never seen.

``predict`` takes a list of texts, a Series, or a DataFrame with a ``text`` column (else its first column) and
returns a DataFrame with ``label`` and one ``prob_<label>`` column per label.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path

import mlflow
import pandas as pd

import rose
from rose.content import file_digest, files_digest
from rose.train.evaluate import predict_proba

log = logging.getLogger(__name__)

ARTIFACT = "classifier"
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
    tokenizer.save_pretrained(folder)
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


def _texts(model_input) -> list[str]:
    if isinstance(model_input, str):
        return [model_input]
    if isinstance(model_input, pd.DataFrame):
        column = "text" if "text" in model_input.columns else model_input.columns[0]
        return [str(t) for t in model_input[column]]
    if isinstance(model_input, dict):
        return _texts(model_input.get("text", next(iter(model_input.values()))))
    return [str(t) for t in list(model_input)]


class RoseClassifier(mlflow.pyfunc.PythonModel):
    """Texts -> DataFrame of ``label`` and ``prob_<label>`` (see the module docstring)."""

    def load_context(self, context) -> None:
        self.model, self.tokenizer, self.labels, self.max_length = load_classifier(context.artifacts[ARTIFACT])

    # A DataFrame is what MLflow hands predict under the model's signature (one string column); the hint also
    # tells MLflow not to infer a second signature from type hints (and not to warn about their absence).
    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        probs = predict_proba(self.model, self.tokenizer, _texts(model_input), max_length=self.max_length)
        frame = pd.DataFrame(probs, columns=[f"prob_{label}" for label in self.labels])
        frame.insert(0, "label", [self.labels[i] for i in probs.argmax(axis=1)] if len(probs) else [])
        return frame


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{p}=={version(p).split('+')[0]}" for p in ("torch", "transformers", "safetensors", "tokenizers",
                                                          "pandas", "mlflow")]  # fmt: skip


def _signature(label_names: list[str]):
    """One unnamed string column in (a list of texts, a Series, or a one-column DataFrame all fit), labels and
    probabilities out."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema

    outputs = [ColSpec(DataType.string, "label")] + [ColSpec(DataType.float, f"prob_{lab}") for lab in label_names]
    return ModelSignature(inputs=Schema([ColSpec(DataType.string)]), outputs=Schema(outputs))


@contextlib.contextmanager
def _quiet():
    """Silence MLflow's notices while logging (the CloudPickle notice: the class is pickled by reference)."""
    import warnings

    quiet = logging.getLogger("mlflow.pyfunc")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        quiet.setLevel(level)


def log_classifier(folder: Path, label_names: list[str], name: str = "model", registered_model_name: str | None = None,
                   *, tags: dict[str, str] | None = None, step: int = 0):  # fmt: skip
    """Log a ``classifier`` folder as a pyfunc model (an MLflow LoggedModel named ``name``, carrying the active
    run's params and ``tags``); returns (ModelInfo, seconds).

    MLflow links to the new model the run's metrics logged at ``step``: pass the step (epoch) whose weights the
    folder holds, so the model shows that epoch's metrics, not the first one's."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    start = time.perf_counter()
    with _quiet():
        info = mlflow.pyfunc.log_model(
            name=model_name(name), python_model=RoseClassifier(), artifacts={ARTIFACT: str(folder)},
            code_paths=[str(Path(rose.__file__).parent)], pip_requirements=_requirements(),
            signature=_signature(label_names), registered_model_name=registered_model_name,
            tags=tags, step=step, model_type="rose-classifier",
        )  # fmt: skip
    return info, time.perf_counter() - start


_MODEL_NAME_UNSAFE = str.maketrans({c: "-" for c in "/:.%\"'"})


def model_name(text: str) -> str:
    """A LoggedModel name MLflow accepts (no ``/ : . % " '``): ``gemma-3-270m__target_demos-seed1``."""
    return text.translate(_MODEL_NAME_UNSAFE) or "model"


def seed_model_name(train_data: str, seed: int) -> str:
    """The name of a seed's classifier in MLflow's Models view: what it was trained on and its seed."""
    return model_name(f"{train_data}-seed{seed}")


def model_uri(run_id: str) -> str:
    """The URI of the classifier a run logged: ``models:/<model id>`` (MLflow 3 LoggedModel, named after what it
    is), else ``runs:/<run id>/model`` (a run logged before models had their own names)."""
    run = mlflow.MlflowClient().get_run(run_id)
    outputs = run.outputs.model_outputs if run.outputs else []
    return f"models:/{outputs[0].model_id}" if outputs else f"runs:/{run_id}/model"


def folder_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file()) / 2**20


def export_self_contained(run_id: str, name: str = "model_full") -> str:
    """A self-contained copy of a seed run's delta model, logged on the same run at ``name``; returns its URI.

    Used when a seed's model is registered (the score stage's champion), so the registered version serves on a
    machine that has never seen the base. Reuses the copy when the run already has one.
    """
    import tempfile

    client = mlflow.MlflowClient()
    if any(a.path == name for a in client.list_artifacts(run_id)):
        return f"runs:/{run_id}/{name}"
    with tempfile.TemporaryDirectory(prefix="rose-export-") as tmp:
        local = Path(mlflow.artifacts.download_artifacts(model_uri(run_id), dst_path=tmp))
        model, tokenizer, labels, max_length = load_classifier(next(local.rglob("meta.json")).parent)
        full = save_full(Path(tmp) / "full", model, tokenizer, max_length=max_length)
        saved = Path(tmp) / name

        with _quiet():
            mlflow.pyfunc.save_model(
                str(saved), python_model=RoseClassifier(), artifacts={ARTIFACT: str(full)},
                code_paths=[str(Path(rose.__file__).parent)], pip_requirements=_requirements(),
                signature=_signature(labels),
            )  # fmt: skip
        client.log_artifacts(run_id, str(saved), name)
    return f"runs:/{run_id}/{name}"
