"""The LightningDataModule shared by every data format: records in, padded batches out."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from tunelab.core.config import ConfigError, instantiate_clearly
from tunelab.core.constants import IGNORE_INDEX
from tunelab.data.collate import pad_batch
from tunelab.data.sampler import ResumableSampler
from tunelab.data.selection import Filter, View, select
from tunelab.data.sources import DataError, place


class TokenizedDataModule(L.LightningDataModule):
    """Holds validated records; tokenizes them once the model's tokenizer is attached.

    Records are validated in `__init__` so that bad data stops the run before the model loads;
    `selection` (name -> filter, see `tunelab.data.selection`) then drops records in that order.
    """

    batch_kind = "sft"

    def __init__(
        self,
        train: list[dict],
        batch_size: int = 8,
        max_length: int = 512,
        seed: int = 0,
        selection: Mapping[str, Filter | None] | None = None,
        val_size: int = 0,
    ):
        super().__init__()
        if val_size < 0:
            raise ConfigError(f"data.val_size={val_size}: expected a number of examples >= 0")
        self.val_size = val_size  # examples held out of training for validation (early stopping)
        self.val_examples: list[dict] = []
        self.batch_size = batch_size
        self.max_length = max_length
        self.seed = seed
        self.source: str = getattr(self, "source", "train")
        self._train = train  # where each record came from, for `where` while validating
        if not train:
            raise DataError(f"{self.source}: no training records (expected at least one)")
        self.records = self.validate(list(train))
        self.removed: dict[str, int] = {}
        filters = {name: f for name, f in (selection or {}).items() if f is not None}
        if filters:
            views = [self.view(r) for r in self.records]
            self.records, self.removed = select(self.records, views, filters)
            if not self.records:
                raise DataError(
                    f"{self.source}: data.selection removed all {len(views)} records ({self.removed})"
                )
        self.tokenizer: PreTrainedTokenizerBase | None = None
        self.train_examples: list[dict[str, list[int]]] = []
        self.truncated = 0  # examples cut to max_length
        self.truncated_tokens = 0  # tokens those cuts dropped
        self.unlearnable = 0  # examples left with no supervised token by the cut

    def where(self, i: int) -> str:
        """Where training record `i` came from: `file:line` (1-based) or `source: record i+1`."""
        return place(self._train, i, self.source)

    def count_truncation(self, length: int) -> None:
        """Count an example of `length` tokens that `max_length` cuts, and the tokens it loses."""
        if length > self.max_length:
            self.truncated += 1
            self.truncated_tokens += length - self.max_length

    def view(self, record: dict) -> View:
        """The prompt and response text of a validated record, for selection filters."""
        raise ConfigError(f"data.selection: {type(self).__name__} records cannot be filtered")

    def report(self) -> dict[str, Any]:
        """What the data side did, for metrics.json: examples, truncation, selection removals."""
        out: dict[str, Any] = {
            "train_examples": len(self.train_examples),
            "train_examples_truncated": self.truncated,
            "train_examples_unlearnable": self.unlearnable,  # every supervised token cut away
            "train_tokens_truncated": self.truncated_tokens,
        }
        return out | {f"data/removed/{name}": n for name, n in self.removed.items()}

    def validate(self, records: list[dict]) -> list[dict]:
        """Check every record's fields; raise DataError naming the first bad record."""
        return records

    def encode(self, records: list[dict]) -> list[dict[str, list[int]]]:
        """Token ids and labels for the records."""
        raise NotImplementedError

    def learnable(self, example: dict) -> bool:
        """Whether a training example keeps a supervised token after `max_length` cuts it."""
        labels = example.get("labels")
        return labels is None or any(label != IGNORE_INDEX for label in labels)

    def check_learnable(self) -> None:
        """DataError when `max_length` leaves no example anything to learn: the run would train on
        nothing and report a loss of 0; `self.unlearnable` counts the examples that lost everything."""
        if not self.train_examples:
            raise DataError(
                f"{self.source}: no training examples after tokenization (data.max_length={self.max_length})"
            )
        self.unlearnable = sum(not self.learnable(e) for e in self.train_examples)
        if self.unlearnable == len(self.train_examples):
            raise DataError(
                f"{self.source}: all {len(self.train_examples)} training examples lose every supervised "
                f"token to data.max_length={self.max_length}: raise data.max_length or shorten the prompts"
            )

    def attach_tokenizer(self, tokenizer: PreTrainedTokenizerBase) -> None:
        """Tokenize the records with the model's tokenizer."""
        self.tokenizer = tokenizer
        self.train_examples = self.encode(self.records)
        self.check_learnable()
        if self.val_size:
            self.train_examples, self.val_examples = split_off(self.train_examples, self.val_size, self.seed)

    def heldout_dataloader(self) -> DataLoader | None:
        """Held-out batches the objective scores before and after training; None: no such set."""
        return None

    def val_dataloader(self) -> DataLoader | list:
        """The held-out validation examples (`val_size`), in order; none (no validation loop)
        without them."""
        return self.batches(self.val_examples) if self.val_examples else []

    def collate_fn(self) -> Callable[[list[dict]], dict]:
        """Examples -> a padded batch; formats with other example fields override this."""
        return partial(pad_batch, pad_id=self.tokenizer.pad_token_id)

    def batches(self, examples: list[dict]) -> DataLoader:
        """Unshuffled padded batches of `examples`."""
        return DataLoader(examples, batch_size=self.batch_size, collate_fn=self.collate_fn())

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
            collate_fn=self.collate_fn(),
        )


def split_off(examples: list[dict], size: int, seed: int) -> tuple[list[dict], list[dict]]:
    """(rest, `size` examples drawn at random with `seed`), each in its original order."""
    if size >= len(examples):
        raise ConfigError(f"data.val_size={size}: only {len(examples)} training examples to hold out from")
    held = set(torch.randperm(len(examples), generator=torch.Generator().manual_seed(seed))[:size].tolist())
    rest = [e for i, e in enumerate(examples) if i not in held]
    return rest, [e for i, e in enumerate(examples) if i in held]


def build_data(node: Any) -> TokenizedDataModule:
    """Instantiate `cfg.data`; a DataError or ConfigError from any nested constructor (a record
    reader, a filter) arrives as itself, with its one clear message."""
    return instantiate_clearly(node, (DataError, ConfigError))
