"""Packing: short SFT examples concatenated into rows of up to `max_length` tokens.

Each packed row carries `position_ids` that restart at 0 for every example. Given position ids and
no 2-D attention mask, transformers (`masking_utils.find_packed_sequence_indices`, 5.x) builds a
block-diagonal causal mask for eager/sdpa attention and hands sequence boundaries to
flash-attention, so no token attends across an example boundary; `forward_logits` in
`tunelab.objectives.base` makes that call. The first token of every example is never a target:
nothing before it in the row belongs to its example, exactly as in an unpacked row.

Rows are filled best-fit decreasing (longest example first, into the row it fills most tightly),
which leaves little padding at row ends; the row order is then shuffled by the data module's seed.
"""

from __future__ import annotations

import bisect
from functools import partial

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from tunelab.core.constants import IGNORE_INDEX
from tunelab.data.sampler import ResumableSampler

Example = dict[str, list[int]]


def pack_examples(examples: list[Example], max_length: int) -> list[Example]:
    """Rows of whole examples, each row at most `max_length` tokens, best-fit decreasing.

    A row holds `input_ids`, `labels` (each example's first token relabelled IGNORE_INDEX),
    `position_ids` (restarting at 0 per example) and `seq_lengths` (the examples' lengths).
    """
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i]["input_ids"]))
    rows: list[list[int]] = []  # example indices per row
    free: list[tuple[int, int]] = []  # (room left, row index), sorted: bisect finds the tightest fit
    for i in order:
        n = len(examples[i]["input_ids"])
        if n > max_length:
            raise ValueError(f"example {i} has {n} tokens, more than max_length={max_length}: truncate first")
        if n == 0:
            continue
        slot = bisect.bisect_left(free, (n, -1))
        if slot == len(free):
            rows.append([i])
            room, row = max_length - n, len(rows) - 1
        else:
            room, row = free.pop(slot)
            rows[row].append(i)
            room -= n
        bisect.insort(free, (room, row))
    return [_join([examples[i] for i in row]) for row in rows]


def _join(examples: list[Example]) -> Example:
    """One packed row from whole examples."""
    row: Example = {"input_ids": [], "labels": [], "position_ids": [], "seq_lengths": []}
    for e in examples:
        n = len(e["input_ids"])
        row["input_ids"] += e["input_ids"]
        # The first token's label would be predicted by the previous example's last token.
        row["labels"] += [IGNORE_INDEX, *e["labels"][1:]]
        row["position_ids"] += list(range(n))
        row["seq_lengths"].append(n)
    return row


def pad_packed(rows: list[Example], pad_id: int) -> dict[str, Tensor]:
    """Right-pad packed rows; `attention_mask` marks real tokens (for counting, not for the model).

    The padding tail gets position ids 0, 1, ... of its own, so transformers sees it as one more
    sequence and no real token attends to it (it comes last and attention is causal anyway).
    """
    width = max(len(r["input_ids"]) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row["input_ids"])
        input_ids[i, :n] = torch.tensor(row["input_ids"])
        labels[i, :n] = torch.tensor(row["labels"])
        attention_mask[i, :n] = 1
        position_ids[i, :n] = torch.tensor(row["position_ids"])
        position_ids[i, n:] = torch.arange(width - n)
    return {
        "input_ids": input_ids,
        "labels": labels,
        "attention_mask": attention_mask,
        "position_ids": position_ids,
    }


def packed_dataloader(
    examples: list[Example], max_length: int, batch_size: int, seed: int, pad_id: int
) -> DataLoader:
    """Batches of `batch_size` packed rows (each up to `max_length` tokens), rows shuffled by `seed`."""
    rows = pack_examples(examples, max_length)
    return DataLoader(
        rows,
        batch_size=batch_size,
        sampler=ResumableSampler(len(rows), seed),  # resumable mid-epoch, see tunelab.data.sampler
        generator=torch.Generator().manual_seed(seed),
        collate_fn=partial(pad_packed, pad_id=pad_id),
    )
