"""Sequence classification data: `{text, label}` records -> right-padded rows with one class each."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor

from tunelab.data.base import TokenizedDataModule
from tunelab.data.sources import DataError


def collate_labelled(examples: list[dict], pad_id: int) -> dict[str, Tensor]:
    """Right-padded `input_ids`/`attention_mask` and a (batch,) `labels` tensor of class ids."""
    width = max(len(e["input_ids"]) for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        input_ids[row, : len(e["input_ids"])] = torch.tensor(e["input_ids"])
        attention_mask[row, : len(e["input_ids"])] = 1
    labels = torch.tensor([e["label"] for e in examples], dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


class ClassificationDataModule(TokenizedDataModule):
    """Labelled texts for a classification head (accuracy is an eval task: `conf/eval/classify.yaml`)."""

    batch_kind = "classification"

    def __init__(
        self,
        train: list[dict],
        num_labels: int = 2,
        source: str = "train",
        **kw,
    ) -> None:
        self.num_labels = num_labels
        self.source = source
        super().__init__(train, **kw)

    def validate(self, records: list[dict]) -> list[dict]:
        """Every record is `{text: str, label: int in [0, num_labels)}`; DataError names the first bad one."""
        for i, r in enumerate(records):
            if not isinstance(r, dict) or not isinstance(r.get("text"), str) or not r["text"].strip():
                raise DataError(f"{self.where(i)}: expected a non-empty string field 'text'")
            label = r.get("label")
            if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < self.num_labels:
                raise DataError(
                    f"{self.where(i)}: field 'label' must be an int in [0, {self.num_labels}), got {label!r}"
                )
        return records

    def encode(self, records: list[dict]) -> list[dict]:
        examples = []
        for r in records:
            ids = self.tokenizer(r["text"], add_special_tokens=False)["input_ids"]
            self.count_truncation(len(ids))
            ids = ids[: self.max_length]
            examples.append({"input_ids": ids, "label": r["label"]})
        return examples

    def collate_fn(self) -> Callable[[list[dict]], dict]:
        return partial(collate_labelled, pad_id=self.tokenizer.pad_token_id)
