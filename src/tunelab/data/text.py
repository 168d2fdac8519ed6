"""Plain-text data for continued pretraining: documents packed into fixed-length blocks."""

from __future__ import annotations

from tunelab.data.base import TokenizedDataModule
from tunelab.data.sources import DataError


class TextDataModule(TokenizedDataModule):
    """`{"text": ...}` records, each ended by eos, concatenated and cut into `max_length` blocks."""

    batch_kind = "text"

    def __init__(self, train: list[dict], source: str = "train", **kw):
        self.source = source
        super().__init__(train, **kw)

    def validate(self, records: list[dict]) -> list[dict]:
        for i, record in enumerate(records):
            if not isinstance(record.get("text"), str):
                raise DataError(f"{self.source}: record {i}: expected a string field 'text'")
        return records

    def encode(self, records: list[dict]) -> list[dict[str, list[int]]]:
        stream: list[int] = []
        for record in records:
            stream += self.tokenizer(record["text"], add_special_tokens=False)["input_ids"]
            stream.append(self.tokenizer.eos_token_id)
        n = self.max_length
        blocks = [stream[i : i + n] for i in range(0, len(stream) - n + 1, n)]
        return [{"input_ids": b, "labels": list(b)} for b in blocks]
