"""Plain-text data for continued pretraining: documents packed into fixed-length blocks."""

from __future__ import annotations

from collections.abc import Iterable

from transformers import PreTrainedTokenizerBase

from tunelab.data.base import TokenizedDataModule
from tunelab.data.selection import View
from tunelab.data.sources import DataError


def pack_blocks(
    tokenizer: PreTrainedTokenizerBase, texts: Iterable[str], length: int
) -> tuple[list[dict[str, list[int]]], int]:
    """Texts, each ended by eos, concatenated and cut into `length`-token blocks labelled on every
    token; also the number of tokens in the last, incomplete block, which is dropped."""
    stream: list[int] = []
    for text in texts:
        stream += tokenizer(text, add_special_tokens=False)["input_ids"]
        stream.append(tokenizer.eos_token_id)
    blocks = [stream[i : i + length] for i in range(0, len(stream) - length + 1, length)]
    return [{"input_ids": b, "labels": list(b)} for b in blocks], len(stream) - length * len(blocks)


class TextDataModule(TokenizedDataModule):
    """`{"text": ...}` records, each ended by eos, concatenated and cut into `max_length` blocks."""

    batch_kind = "text"

    def __init__(self, train: list[dict], source: str = "train", **kw):
        self.source = source
        super().__init__(train, **kw)

    def validate(self, records: list[dict]) -> list[dict]:
        for i, record in enumerate(records):
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise DataError(f"{self.where(i)}: field 'text': expected a string")
            if not record["text"].strip():
                raise DataError(f"{self.where(i)}: field 'text': blank (expected text to train on)")
        return records

    def view(self, record: dict) -> View:
        return View(prompt="", response=record["text"])

    def encode(self, records: list[dict]) -> list[dict[str, list[int]]]:
        blocks, tail = pack_blocks(self.tokenizer, (r["text"] for r in records), self.max_length)
        self.truncated_tokens += tail  # the incomplete last block: no example is cut, tokens are
        return blocks
