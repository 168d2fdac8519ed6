"""Supervised fine-tuning data: chat records, completion-only labels by default."""

from __future__ import annotations

from tunelab.data.base import TokenizedDataModule
from tunelab.data.chat import to_messages, tokenize_chat


class SFTDataModule(TokenizedDataModule):
    """Chat (`messages`) or `prompt`/`completion` records through the tokenizer's chat template."""

    batch_kind = "sft"

    def __init__(self, train: list[dict], completion_only: bool = True, source: str = "train", **kw):
        self.completion_only = completion_only
        self.source = source
        super().__init__(train, **kw)

    def validate(self, records: list[dict]) -> list[dict]:
        return [{"messages": to_messages(r, f"{self.source}: record {i}")} for i, r in enumerate(records)]

    def encode(self, records: list[dict]) -> list[dict[str, list[int]]]:
        examples = []
        for record in records:
            ids, labels = tokenize_chat(self.tokenizer, record["messages"], self.completion_only)
            if len(ids) > self.max_length:
                self.truncated += 1
                ids, labels = ids[: self.max_length], labels[: self.max_length]
            examples.append({"input_ids": ids, "labels": labels})
        return examples
