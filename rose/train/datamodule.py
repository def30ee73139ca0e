"""Tokenized text-classification data: tokenize once, pad per batch, optionally group batches by length.

Texts are tokenized once per training call (:func:`encode`, no padding) and reused by every seed; a batch is
padded to its own longest text, not to ``max_length`` (``pad_to_max_length`` reproduces the reference code).
Grouping by length sorts shuffled mega-batches by length, so batches hold texts of similar length and carry
little padding, while the order of batches stays random.

Reference: the length-grouped sampler of transformers' ``Trainer`` (``group_by_length``).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

MEGABATCH = 50  # batches per mega-batch when grouping by length


@dataclass
class Encoded:
    """Token ids of texts (unpadded) with their label indices (-1 when unknown)."""

    input_ids: list[list[int]]
    labels: list[int]
    states: list[torch.Tensor] | None = None  # a frozen trunk's output per text (:mod:`rose.train.trunk`)

    def __len__(self) -> int:
        return len(self.input_ids)

    def subset(self, index: Sequence[int]) -> Encoded:
        states = None if self.states is None else [self.states[i] for i in index]
        return Encoded([self.input_ids[i] for i in index], [self.labels[i] for i in index], states)


def encode(tokenizer, texts: Sequence[str], labels: Sequence[int] | None = None, max_length: int = 128) -> Encoded:
    """Tokenize ``texts`` once, truncated to ``max_length`` tokens, without padding."""
    ids = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False)["input_ids"]
    return Encoded(list(ids), list(labels) if labels is not None else [-1] * len(ids))


class EncodedDataset(Dataset):
    def __init__(self, data: Encoded):
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[list[int], int]:
        return self.data.input_ids[i], self.data.labels[i]


class StatesDataset(EncodedDataset):
    """Items of cached trunk states (``[length, hidden]``) instead of token ids."""

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.data.states[i], self.data.labels[i]


class Collate:
    """Pads a batch with ``pad_id`` to its longest text (or to ``pad_to``) and builds the attention mask."""

    def __init__(self, pad_id: int, pad_to: int | None = None):
        self.pad_id, self.pad_to = pad_id, pad_to

    def __call__(self, batch: list[tuple[list[int], int]]) -> dict[str, torch.Tensor]:
        width = self.pad_to or max(len(ids) for ids, _ in batch)
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (ids, _) in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            mask[row, : len(ids)] = 1
        labels = torch.tensor([label for _, label in batch], dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


class StatesCollate:
    """Pads a batch of trunk states with zeros to its longest text: ``states``, ``attention_mask``, ``labels``."""

    def __call__(self, batch: list[tuple[torch.Tensor, int]]) -> dict[str, torch.Tensor]:
        from rose.train.trunk import pad

        states, mask = pad([s for s, _ in batch])
        labels = torch.tensor([label for _, label in batch], dtype=torch.long)
        return {"states": states, "attention_mask": mask, "labels": labels}


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Shuffled batches of similar-length texts; a new seeded order each epoch."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0):
        self.lengths, self.batch_size, self.seed, self.epoch = list(lengths), batch_size, seed, 0

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        rng = random.Random(f"{self.seed}:{self.epoch}")
        self.epoch += 1
        index = list(range(len(self.lengths)))
        rng.shuffle(index)
        size = self.batch_size * MEGABATCH
        batches = []
        for start in range(0, len(index), size):
            mega = sorted(index[start : start + size], key=lambda i: -self.lengths[i])
            batches.extend(mega[i : i + self.batch_size] for i in range(0, len(mega), self.batch_size))
        rng.shuffle(batches)
        return iter(batches)


class ClassificationDataModule(L.LightningDataModule):
    """Train and dev splits of pre-tokenized data, plus any evaluation sets for ``predict``.

    ``pad_to_max_length`` pads every batch to ``max_length`` (the reference code); otherwise per batch.
    """

    def __init__(self, train: Encoded, dev: Encoded, *, pad_id: int, batch_size: int = 16,
                 eval_batch_size: int = 64, group_by_length: bool = True, pad_to_max_length: bool = False,
                 max_length: int = 128, seed: int = 0):  # fmt: skip
        super().__init__()
        self.train, self.dev = train, dev
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.group_by_length, self.seed = group_by_length and not pad_to_max_length, seed
        self.collate = Collate(pad_id, max_length if pad_to_max_length else None)
        self.dataset = EncodedDataset
        if train.states is not None:  # a frozen trunk's cached output: batches of states, padded per batch
            self.collate, self.dataset = StatesCollate(), StatesDataset

    def train_dataloader(self) -> DataLoader:
        dataset = self.dataset(self.train)
        if self.group_by_length:
            sampler = LengthGroupedBatchSampler([len(x) for x in self.train.input_ids], self.batch_size, self.seed)
            return DataLoader(dataset, batch_sampler=sampler, collate_fn=self.collate)
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=True, generator=generator,
                          collate_fn=self.collate)  # fmt: skip

    def val_dataloader(self) -> DataLoader:
        return self.loader(self.dev)

    def loader(self, data: Encoded) -> DataLoader:
        """An ordered loader for scoring; sorted by length would be faster but keeps things simple to map back."""
        return DataLoader(self.dataset(data), batch_size=self.eval_batch_size, collate_fn=self.collate)
