"""Supervised fine-tuning data: chat records, completion-only labels by default."""

from __future__ import annotations

from torch.utils.data import DataLoader

from tunelab.data.base import TokenizedDataModule
from tunelab.data.chat import to_messages, tokenize_chat
from tunelab.data.packing import packed_dataloader


class SFTDataModule(TokenizedDataModule):
    """Chat (`messages`) or `prompt`/`completion` records through the tokenizer's chat template."""

    batch_kind = "sft"

    def __init__(
        self,
        train: list[dict],
        completion_only: bool = True,
        source: str = "train",
        packing: bool = False,
        **kw,
    ):
        self.completion_only = completion_only
        self.source = source
        self.packing = packing  # rows of whole examples up to max_length, see tunelab.data.packing
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

    def train_dataloader(self) -> DataLoader:
        if not self.packing:
            return super().train_dataloader()
        if self.tokenizer is None:
            raise RuntimeError("attach_tokenizer() must run before training")
        pad_id = self.tokenizer.pad_token_id
        return packed_dataloader(self.train_examples, self.max_length, self.batch_size, self.seed, pad_id)
