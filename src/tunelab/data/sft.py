"""Supervised fine-tuning data: chat records, completion-only labels by default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from tunelab.core.config import ConfigError
from tunelab.data.base import TokenizedDataModule
from tunelab.data.chat import tokenize_chat
from tunelab.data.formats import check_format, to_messages
from tunelab.data.packing import packed_dataloader
from tunelab.data.replay import Replay
from tunelab.data.selection import View


def load_chat_template(template: str | None) -> str | None:
    """A chat-template override: Jinja text, or the path of a file holding it; checked to parse."""
    if template is None:
        return None
    path = Path(template)
    if "{{" not in template and "{%" not in template:  # not Jinja text: a file name
        if not path.is_file():
            raise ConfigError(f"data.chat_template={template!r}: no such template file")
        template = path.read_text()
    try:
        jinja2.Environment().parse(template)
    except jinja2.TemplateSyntaxError as err:
        raise ConfigError(f"data.chat_template: line {err.lineno}: {err.message}") from None
    return template


class SFTDataModule(TokenizedDataModule):
    """Chat records of any format in `tunelab.data.formats` through the tokenizer's chat template.

    `chat_template` overrides the tokenizer's (the override is saved with the trained artifact and
    used by evaluation too); `replay` mixes general data into the training stream.
    """

    batch_kind = "sft"

    def __init__(
        self,
        train: list[dict],
        completion_only: bool = True,
        source: str = "train",
        format: str = "auto",
        chat_template: str | None = None,
        replay: Replay | None = None,
        packing: bool = False,
        **kw,
    ):
        self.completion_only = completion_only
        self.source = source
        check_format(format)
        self.format = format
        self.chat_template = load_chat_template(chat_template)
        self.replay = replay or Replay()
        self.packing = packing  # rows of whole examples up to max_length, see tunelab.data.packing
        super().__init__(train, **kw)

    def validate(self, records: list[dict]) -> list[dict]:
        return [{"messages": to_messages(r, self.where(i), self.format)} for i, r in enumerate(records)]

    def view(self, record: dict) -> View:
        turns = record["messages"]
        prompt = [m["content"] for m in turns if m["role"] != "assistant"]
        response = [m["content"] for m in turns if m["role"] == "assistant"]
        return View(prompt="\n".join(prompt), response="\n".join(response))

    def attach_tokenizer(self, tokenizer: PreTrainedTokenizerBase) -> None:
        if self.chat_template is not None:
            tokenizer.chat_template = self.chat_template
        super().attach_tokenizer(tokenizer)

    def encode(self, records: list[dict]) -> list[dict[str, list[int]]]:
        examples = []
        for record in records:
            ids, labels = tokenize_chat(self.tokenizer, record["messages"], self.completion_only)
            self.count_truncation(len(ids))
            examples.append({"input_ids": ids[: self.max_length], "labels": labels[: self.max_length]})
        if self.replay.fraction > 0:
            pool = self.replay.pool(self.tokenizer, self.max_length, self.completion_only)
            replayed = self.replay.draw(pool, len(examples), self.seed)
            examples += replayed  # the training loader shuffles, which interleaves them
        return examples

    def report(self) -> dict[str, Any]:
        return super().report() | {"train_examples_replay": self.replay.added}

    def train_dataloader(self) -> DataLoader:
        if not self.packing:
            return super().train_dataloader()
        if self.tokenizer is None:
            raise RuntimeError("attach_tokenizer() must run before training")
        pad_id = self.tokenizer.pad_token_id
        return packed_dataloader(self.train_examples, self.max_length, self.batch_size, self.seed, pad_id)
