"""Length-sorted, dynamically padded batches of token ids: the one inference loop shape rose uses."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch


def padded_batches(
    ids: Sequence[Sequence[int]], batch_size: int, pad_id: int
) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor]]:
    """``(positions, input_ids, attention_mask)`` per batch, shortest texts first, each padded to its longest.

    ``positions`` index ``ids``, so results can be written back in the caller's order.
    """
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        width = max(len(ids[i]) for i in chunk)
        input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros_like(input_ids)
        for row, i in enumerate(chunk):
            input_ids[row, : len(ids[i])] = torch.as_tensor(ids[i], dtype=torch.long)
            mask[row, : len(ids[i])] = 1
        yield chunk, input_ids, mask
