"""The LightningModule around ``AutoModelForSequenceClassification`` and the callbacks of one training run.

Per split, the epoch's predictions are gathered and scored by :func:`rose.metrics.classification_metrics` (the
project's one macro-F1: over every label of the task), a shared ``model_step``, AdamW with an
optional linear warm-up and linear decay (the schedule of transformers' ``Trainer``), optional weight decay
(never on biases and LayerNorm weights) and optionally frozen word embeddings; or (``reference``) the reference
code's plain AdamW at a constant learning rate.

Reference: ashleve/lightning-hydra-template ``src/models/mnist_module.py``.
"""

from __future__ import annotations

import copy
import logging
import math

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint

from rose.errors import RoseError
from rose.metrics import classification_metrics
from rose.naming import metric_key

log = logging.getLogger(__name__)


class EpochPredictions:
    """Predictions and targets of one split over an epoch, scored at its end with the project's metrics."""

    def __init__(self, label_names: list[str]):
        self.label_names = list(label_names)
        self.reset()

    def reset(self) -> None:
        self.preds: list[int] = []
        self.targets: list[int] = []

    def update(self, preds: torch.Tensor, targets: torch.Tensor) -> None:
        self.preds.extend(preds.detach().cpu().tolist())
        self.targets.extend(targets.detach().cpu().tolist())

    def compute(self) -> dict[str, float]:
        """``accuracy``, ``macro_f1`` and ``f1/<label>`` of the epoch so far (empty when nothing was seen)."""
        if not self.targets:
            return {}
        return classification_metrics(self.targets, self.preds, self.label_names)


def freeze_word_embeddings(model: torch.nn.Module) -> int:
    """Stop training the input word embeddings; returns how many parameters were frozen."""
    embeddings = model.get_input_embeddings()
    for p in embeddings.parameters():
        p.requires_grad_(False)
    return sum(p.numel() for p in embeddings.parameters())


def freeze_below_top_layers(model: torch.nn.Module, top: int) -> int:
    """Train only the top ``top`` encoder layers (and the head): freeze the embeddings and every layer below;
    returns how many parameters were frozen. Works on encoders with ``base_model.embeddings`` and
    ``base_model.encoder.layer`` (BERT, RoBERTa, XLM-R and their kin)."""
    base = model.base_model
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if layers is None or not hasattr(base, "embeddings"):
        raise RoseError(f"train_top_layers: {type(model).__name__} has no encoder.layer list to freeze: "
                        "use train_top_layers 0 (train every layer) with this classifier")  # fmt: skip
    if not 0 < top <= len(layers):
        raise RoseError(f"train_top_layers is {top} but the encoder has {len(layers)} layers: "
                        f"pass 1 to {len(layers)}, or 0 to train every layer")  # fmt: skip
    frozen = [base.embeddings, *layers[: len(layers) - top]]
    count = 0
    for module in frozen:
        for p in module.parameters():
            p.requires_grad_(False)
            count += p.numel()
    return count


class ClassifierModule(L.LightningModule):
    """Fine-tunes a sequence classifier; logs ``<split>/loss``, ``<split>/accuracy``, ``<split>/macro_f1`` and
    ``<split>/f1/<label>`` for the ``train`` and ``val`` splits."""

    def __init__(self, model: torch.nn.Module, label_names: list[str], *, learning_rate: float = 1e-5,
                 weight_decay: float = 0.0, warmup_ratio: float = 0.0, reference: bool = False,
                 frozen: list[torch.nn.Module] = (), top: torch.nn.Module | None = None,
                 max_grad_norm: float | None = None):  # fmt: skip
        super().__init__()
        self.model = model
        # frozen modules (a frozen trunk) always run in eval mode: no dropout, so their output is the cached one
        self.__dict__["frozen"] = list(frozen)
        self.__dict__["top"] = top  # the model above a cached trunk (rose.train.trunk.top_view): reads ``states``
        self.label_names = list(label_names)
        self.learning_rate, self.weight_decay, self.warmup_ratio = learning_rate, weight_decay, warmup_ratio
        self.reference = reference  # the reference code's optimizer: plain AdamW, constant learning rate
        self.max_grad_norm = max_grad_norm  # clipped here, not by Lightning: see on_before_optimizer_step
        self.train_metrics = EpochPredictions(self.label_names)
        self.val_metrics = EpochPredictions(self.label_names)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    def train(self, mode: bool = True) -> ClassifierModule:
        super().train(mode)
        self._frozen_eval()
        return self

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        self._frozen_eval()  # Lightning sets each module's mode itself (and restores them after validation)

    def _frozen_eval(self) -> None:
        for module in getattr(self, "frozen", ()):
            module.train(False)

    def model_step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if "states" in batch:
            logits = self.top(inputs_embeds=batch["states"], attention_mask=batch["attention_mask"]).logits
        else:
            logits = self(batch["input_ids"], batch["attention_mask"])
        loss = torch.nn.functional.cross_entropy(logits.float(), batch["labels"])
        return loss, logits.argmax(dim=-1), batch["labels"]

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, preds, targets = self.model_step(batch)
        self.train_metrics.update(preds, targets)
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(targets))
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss, preds, targets = self.model_step(batch)
        self.val_metrics.update(preds, targets)
        self.log("val/loss", loss, on_step=False, on_epoch=True, batch_size=len(targets))

    def on_train_epoch_end(self) -> None:
        self._log_split("train", self.train_metrics)

    def on_validation_epoch_end(self) -> None:
        self._log_split("val", self.val_metrics)

    def _log_split(self, split: str, metrics: EpochPredictions) -> None:
        values = metrics.compute()
        metrics.reset()
        if not values:
            return
        self.log(f"{split}/accuracy", values["accuracy"])
        self.log(f"{split}/macro_f1", values["macro_f1"])
        for label in self.label_names:
            self.log(metric_key(split, "f1", label=label), values[metric_key("f1", label=label)])

    def on_before_optimizer_step(self, optimizer) -> None:
        """Clip the gradients' global 2-norm to ``max_grad_norm`` (Lightning's ``gradient_clip_val`` with the "norm"
        algorithm does the same, but refuses a fused optimizer under mixed precision; rose's precisions, bf16 and
        fp32, never scale the loss, so the gradients here are the true ones)."""
        if self.max_grad_norm:
            params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)

    def configure_optimizers(self):
        from transformers import get_linear_schedule_with_warmup

        if self.reference:  # as the reference code: torch's AdamW defaults (weight decay 0.01 on every parameter)
            return torch.optim.AdamW(self.model.parameters(), lr=self.learning_rate)
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            if p.requires_grad:
                (no_decay if p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
        groups = [{"params": decay, "weight_decay": self.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        # fused AdamW, as transformers' Trainer: on 2 CPU threads a step over the top four layers of e5-small (7.1M
        # parameters) took 4.6 ms against 27 ms for the default (foreach)
        optimizer = torch.optim.AdamW(groups, lr=self.learning_rate, fused=True)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        schedule = get_linear_schedule_with_warmup(optimizer, int(self.warmup_ratio * total), total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


class EpochEnd(Checkpoint):
    """Base for callbacks that read the epoch's aggregated metrics.

    Lightning calls the ``on_train_epoch_end`` of checkpoint-like callbacks after the epoch's logged values are
    reduced, so ``train/loss`` and the ``val/*`` metrics of this epoch are in ``trainer.callback_metrics``.
    """

    @staticmethod
    def epoch_metrics(trainer: L.Trainer) -> dict[str, float]:
        return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(("train/", "val/"))}


class BestWeights(EpochEnd):
    """Keeps an in-memory copy of the trainable weights at the best epoch and restores it when training ends.

    With ``tie_break`` (a loss, lower is better), an epoch that ties the best ``monitor`` value but has a lower
    ``tie_break`` value becomes the best: a small dev split's macro-F1 often reaches 1.0 in the first epoch and
    stays there, and without it the first, least trained epoch would be restored."""

    def __init__(self, monitor: str = "val/macro_f1", mode: str = "max", tie_break: str = ""):
        self.monitor, self.mode, self.tie_break = monitor, mode, tie_break
        self.best: float | None = None
        self.best_tie = math.inf
        self.best_epoch = -1
        self.state: dict[str, torch.Tensor] | None = None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = self.epoch_metrics(trainer)
        value = metrics.get(self.monitor)
        if value is None:
            return
        tie = metrics.get(self.tie_break, math.inf) if self.tie_break else math.inf
        better = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
        if better or (value == self.best and tie < self.best_tie):
            self.best, self.best_tie, self.best_epoch = value, tie, trainer.current_epoch
            self.state = {n: copy.deepcopy(p.detach()) for n, p in pl_module.named_parameters() if p.requires_grad}

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.state is not None:
            with torch.no_grad():
                params = dict(pl_module.named_parameters())
                for name, value in self.state.items():
                    params[name].copy_(value)
            log.debug("restored the weights of epoch %d (%s=%.4f)", self.best_epoch, self.monitor, self.best)


class EpochHistory(EpochEnd):
    """Records each epoch's metrics and passes them to ``sink(metrics, epoch)`` (e.g. MLflow, Optuna)."""

    def __init__(self, *sinks):
        self.sinks = sinks
        self.history: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = self.epoch_metrics(trainer)
        self.history.append(metrics)
        for sink in self.sinks:
            sink(metrics, trainer.current_epoch, trainer)
