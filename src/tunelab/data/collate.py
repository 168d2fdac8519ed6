"""Pad token sequences into batches."""

from __future__ import annotations

import torch
from torch import Tensor

from tunelab.core.constants import IGNORE_INDEX


def pad_batch(examples: list[dict[str, list[int]]], pad_id: int) -> dict[str, Tensor]:
    """Right-pad `input_ids` (with `pad_id`) and `labels` (ignored) to the longest example."""
    width = max(len(e["input_ids"]) for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example["input_ids"])
        input_ids[row, :n] = torch.tensor(example["input_ids"])
        labels[row, :n] = torch.tensor(example["labels"])
        attention_mask[row, :n] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
