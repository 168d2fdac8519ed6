"""The LightningDataModule shared by every data format: records in, padded batches out."""

from __future__ import annotations

from functools import partial

import lightning as L
import torch
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from tunelab.data.collate import pad_batch
from tunelab.resume import ResumableSampler


class TokenizedDataModule(L.LightningDataModule):
    """Holds validated records; tokenizes them once the model's tokenizer is attached.

    Records are validated in `__init__` so that bad data stops the run before the model loads.
    """

    batch_kind = "sft"

    def __init__(self, train: list[dict], batch_size: int = 8, max_length: int = 512, seed: int = 0):
        super().__init__()
        self.batch_size = batch_size
        self.max_length = max_length
        self.seed = seed
        self.records = self.validate(list(train))
        self.tokenizer: PreTrainedTokenizerBase | None = None
        self.train_examples: list[dict[str, list[int]]] = []
        self.truncated = 0

    def validate(self, records: list[dict]) -> list[dict]:
        """Check every record's fields; raise DataError naming the first bad record."""
        return records

    def encode(self, records: list[dict]) -> list[dict[str, list[int]]]:
        """Token ids and labels for the records."""
        raise NotImplementedError

    def attach_tokenizer(self, tokenizer: PreTrainedTokenizerBase) -> None:
        """Tokenize the records with the model's tokenizer."""
        self.tokenizer = tokenizer
        self.train_examples = self.encode(self.records)

    def heldout_dataloader(self) -> DataLoader | None:
        """Held-out batches the objective scores before and after training; None: no such set."""
        return None

    def train_dataloader(self) -> DataLoader:
        if self.tokenizer is None:
            raise RuntimeError("attach_tokenizer() must run before training")
        return DataLoader(
            self.train_examples,
            batch_size=self.batch_size,
            # Each epoch's order from (seed, epoch) alone, so a resumed run can start mid-epoch.
            sampler=ResumableSampler(len(self.train_examples), self.seed),
            # The loader's own seed draw must not consume the global RNG that resume restores.
            generator=torch.Generator().manual_seed(self.seed),
            collate_fn=partial(pad_batch, pad_id=self.tokenizer.pad_token_id),
        )
