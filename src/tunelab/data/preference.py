"""Preference data: (prompt, chosen, rejected) pairs, and unpaired (prompt, completion, label) for KTO.

Prompts and completions are strings or chat messages (TRL's "conversational" format). Each is
tokenized once as prompt ids (the chat rendered with a generation prompt) and completion ids (what
the full chat adds after them); batches join them back with labels on the completion only.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from tunelab.core.constants import IGNORE_INDEX
from tunelab.data.base import TokenizedDataModule
from tunelab.data.chat import ROLES, render_ids
from tunelab.data.collate import pad_batch
from tunelab.data.sampler import ResumableSampler
from tunelab.data.sources import DataError, place, read_records

Messages = list[dict[str, str]]


def optional_records(path: str | None, split: str = "test", limit: int | None = None) -> list[dict] | None:
    """`read_records(path)`, or None when no path is given (an optional held-out set)."""
    return None if path is None else read_records(path, split, limit)


def as_messages(value: object, role: str, where: str) -> Messages:
    """A string as one `role` message, or a validated list of chat messages."""
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: expected a string or a non-empty list of chat messages")
    for i, m in enumerate(value):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise DataError(f"{where}[{i}]: expected {{'role': one of {ROLES}, 'content': string}}")
    return value


def _field(record: object, name: str, where: str) -> object:
    if not isinstance(record, dict) or name not in record:
        raise DataError(f"{where}: missing field {name!r}")
    return record[name]


def split_implicit_prompt(record: dict) -> dict:
    """TRL's implicit-prompt pairs (full chats in chosen/rejected, no prompt): the shared turns
    become the prompt."""
    chosen, rejected = record.get("chosen"), record.get("rejected")
    if "prompt" in record or not (isinstance(chosen, list) and isinstance(rejected, list)):
        return record
    n = 0
    while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
        n += 1
    return {"prompt": chosen[:n], "chosen": chosen[n:], "rejected": rejected[n:]} if n else record


def _not_blank(messages: Messages, where: str) -> Messages:
    if not "".join(m["content"] for m in messages).strip():
        raise DataError(f"{where}: blank (expected text)")
    return messages


def pair_record(record: dict, where: str) -> dict[str, Messages]:
    """A validated `{prompt, chosen, rejected}` record, every field as chat messages; the two
    completions non-blank and different (an equal pair has no preference to learn)."""
    record = split_implicit_prompt(record) if isinstance(record, dict) else record
    out = {"prompt": as_messages(_field(record, "prompt", where), "user", f"{where}: field 'prompt'")}
    for name in ("chosen", "rejected"):
        value = _field(record, name, where)
        out[name] = _not_blank(
            as_messages(value, "assistant", f"{where}: field {name!r}"), f"{where}: field {name!r}"
        )
    if out["chosen"] == out["rejected"]:
        raise DataError(f"{where}: fields 'chosen' and 'rejected' are equal (expected two different answers)")
    return out


def unpaired_records(record: dict, where: str) -> list[dict]:
    """`{prompt, completion, label: bool}` as one record; a pair record as two (chosen: True)."""
    if isinstance(record, dict) and "chosen" in record and "completion" not in record:
        pair = pair_record(record, where)
        return [
            {"prompt": pair["prompt"], "completion": pair["chosen"], "label": True},
            {"prompt": pair["prompt"], "completion": pair["rejected"], "label": False},
        ]
    prompt = as_messages(_field(record, "prompt", where), "user", f"{where}: field 'prompt'")
    completion = as_messages(_field(record, "completion", where), "assistant", f"{where}: field 'completion'")
    _not_blank(completion, f"{where}: field 'completion'")
    label = _field(record, "label", where)
    if not isinstance(label, bool):
        raise DataError(f"{where}: field 'label': expected true (desirable) or false, got {label!r}")
    return [{"prompt": prompt, "completion": completion, "label": label}]


def split_ids(
    tokenizer: PreTrainedTokenizerBase, prompt: Messages, completion: Messages
) -> tuple[list[int], list[int]]:
    """Prompt ids (with generation prompt) and the ids the completion adds after them."""
    prompt_ids = render_ids(tokenizer, prompt, prompt=True)
    full = render_ids(tokenizer, [*prompt, *completion], prompt=False)
    if full[: len(prompt_ids)] != prompt_ids:
        raise DataError("the chat template does not render the prompt as a prefix of prompt+completion")
    return prompt_ids, full[len(prompt_ids) :]


def join(prompt: list[int], completion: list[int], max_length: int) -> dict[str, list[int]]:
    """One row, labelled on the completion only, cut to `max_length` tokens."""
    ids = (prompt + completion)[:max_length]
    labels = ([IGNORE_INDEX] * len(prompt) + completion)[:max_length]
    return {"input_ids": ids, "labels": labels}


def collate_pairs(examples: list[dict], pad_id: int, max_length: int) -> dict[str, Tensor]:
    """2B rows: prompt+chosen for every pair, then prompt+rejected, padded to one width."""
    rows = [join(e["prompt"], e["chosen"], max_length) for e in examples]
    rows += [join(e["prompt"], e["rejected"], max_length) for e in examples]
    return pad_batch(rows, pad_id)


def collate_unpaired(examples: list[dict], pad_id: int, max_length: int) -> dict[str, Tensor]:
    """2B rows: each example, then prompt i with completion i-1 (KTO's KL estimate), + labels."""
    n = len(examples)
    rows = [join(e["prompt"], e["completion"], max_length) for e in examples]
    rows += [join(examples[i]["prompt"], examples[i - 1]["completion"], max_length) for i in range(n)]
    batch = pad_batch(rows, pad_id)
    batch["desirable"] = torch.tensor([e["label"] for e in examples], dtype=torch.bool)
    return batch


class PreferenceDataModule(TokenizedDataModule):
    """Preference pairs for training, and optional held-out pairs scored before and after."""

    batch_kind = "preference"

    def __init__(
        self, train: list[dict], heldout: list[dict] | None = None, source: str = "train", **kw
    ) -> None:
        self.source = source
        self.heldout_records = [
            pair_record(r, place(heldout, i, f"held-out {source}")) for i, r in enumerate(heldout or [])
        ]
        self.heldout_examples: list[dict] = []
        super().__init__(train, **kw)

    def validate(self, records: list[dict]) -> list[dict]:
        return [pair_record(r, self.where(i)) for i, r in enumerate(records)]

    def learnable(self, example: dict) -> bool:
        """The cut row keeps a completion token, and the two cut completions still differ."""
        room = self.max_length - len(example["prompt"])
        return room > 0 and example["chosen"][:room] != example["rejected"][:room]

    def encode_pairs(self, records: list[dict]) -> list[dict[str, list[int]]]:
        examples = []
        for r in records:
            prompt, chosen = split_ids(self.tokenizer, r["prompt"], r["chosen"])
            _, rejected = split_ids(self.tokenizer, r["prompt"], r["rejected"])
            self.count_truncation(len(prompt) + max(len(chosen), len(rejected)))
            examples.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
        return examples

    def encode(self, records: list[dict]) -> list[dict[str, list[int]]]:
        return self.encode_pairs(records)

    def attach_tokenizer(self, tokenizer: PreTrainedTokenizerBase) -> None:
        super().attach_tokenizer(tokenizer)
        self.heldout_examples = self.encode_pairs(self.heldout_records)

    def loader(self, examples: list[dict], collate, shuffle: bool) -> DataLoader:
        """Batches of `examples` through `collate` (seeded shuffling for training)."""
        if self.tokenizer is None:
            raise RuntimeError("attach_tokenizer() must run before batches are made")
        return DataLoader(
            examples,
            batch_size=self.batch_size,
            # Resumable mid-epoch: see tunelab.data.sampler
            sampler=ResumableSampler(len(examples), self.seed) if shuffle else None,
            generator=torch.Generator().manual_seed(self.seed),
            collate_fn=partial(collate, pad_id=self.tokenizer.pad_token_id, max_length=self.max_length),
        )

    def train_dataloader(self) -> DataLoader:
        return self.loader(self.train_examples, collate_pairs, shuffle=True)

    def batches(self, examples: list[dict]) -> DataLoader:
        return self.loader(examples, collate_pairs, shuffle=False)

    def heldout_dataloader(self) -> DataLoader | None:
        """Held-out pairs in training's batch format, unshuffled; None without a held-out set."""
        return (
            self.loader(self.heldout_examples, collate_pairs, shuffle=False)
            if self.heldout_examples
            else None
        )


class UnpairedDataModule(PreferenceDataModule):
    """KTO data: `{prompt, completion, label}` records (pair records are split into two)."""

    batch_kind = "unpaired"

    def validate(self, records: list[dict]) -> list[dict]:
        out = []
        for i, r in enumerate(records):
            out += unpaired_records(r, self.where(i))
        return out

    def learnable(self, example: dict) -> bool:
        return len(example["prompt"]) < self.max_length and bool(example["completion"])

    def encode(self, records: list[dict]) -> list[dict]:
        examples = []
        for r in records:
            prompt, completion = split_ids(self.tokenizer, r["prompt"], r["completion"])
            self.count_truncation(len(prompt) + len(completion))
            examples.append({"prompt": prompt, "completion": completion, "label": r["label"]})
        return examples

    def train_dataloader(self) -> DataLoader:
        return self.loader(self.train_examples, collate_unpaired, shuffle=True)

    def batches(self, examples: list[dict]) -> DataLoader:
        return self.loader(examples, collate_unpaired, shuffle=False)
