"""A fine-tuned classifier as an MLflow pyfunc model: texts in, labels and probabilities out.

Two layouts of the ``classifier`` artifact (``meta.json`` says which), written and read by :mod:`rose.train.delta`:
``delta`` (every seed: what training changed, against its base model named by content digest) and ``full`` (the
registered model: the whole fine-tuned model folder, so it serves where the base was never seen).

``predict`` takes a list of texts, a Series, or a DataFrame with a ``text`` column (else its first column) and
returns a DataFrame with ``label`` and one ``prob_<label>`` column per label.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path

import mlflow
import pandas as pd

import rose
from rose.train.delta import load_classifier, save_full
from rose.train.evaluate import predict_proba

log = logging.getLogger(__name__)

ARTIFACT = "classifier"


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
