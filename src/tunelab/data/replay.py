"""Replay: a fraction of general data mixed into the fine-tuning stream against forgetting.

`fraction` r is the share of *training examples* (rows) that come from the replay pool: for n task
examples, round(r·n / (1 − r)) replay examples join them, drawn without replacement from the pool
(the pool is cycled when it is smaller). Replay records are plain text (`{"text"}`, packed into
`max_length` blocks and labelled on every token, like pretraining) or chats in any SFT format.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from transformers import PreTrainedTokenizerBase

from tunelab.core.config import ConfigError
from tunelab.data.chat import tokenize_chat
from tunelab.data.formats import to_messages
from tunelab.data.sources import DataError, place
from tunelab.data.text import pack_blocks

Example = dict[str, list[int]]


def task_chats(tasks: list[str], size: int, seed: int = 0) -> list[dict]:
    """`size` chats of each tiny-world task's train split: a replay pool of other skills."""
    from tunelab.world.records import chat_records

    return [r for task in tasks for r in chat_records(task, "train", size, seed)]


def replay_count(fraction: float, n_task: int) -> int:
    """Replay examples to add to `n_task` task examples so that they make up `fraction` of all."""
    return round(fraction * n_task / (1.0 - fraction))


class Replay:
    """A pool of general records and the fraction of the training stream they take.

    `records` is a list or a zero-argument factory (a Hydra `_partial_`), called only when
    `fraction > 0`, so a disabled replay costs nothing. Records are validated here, before the
    model loads.
    """

    def __init__(
        self,
        fraction: float = 0.0,
        records: list[dict] | Callable[[], list[dict]] | None = None,
        source: str = "replay",
        fmt: str = "auto",
    ) -> None:
        if not 0.0 <= fraction < 1.0:
            raise ConfigError(f"data.replay.fraction={fraction}: expected a number in [0, 1)")
        if fraction > 0 and records is None:
            raise ConfigError("data.replay.fraction > 0 needs data.replay.records (the general data)")
        self.fraction = fraction
        self.source = source
        self.texts: list[str] = []
        self.chats: list[list[dict]] = []
        self.added = 0
        if fraction > 0:
            self._validate(records() if callable(records) else records, fmt)

    def _validate(self, records: list[dict], fmt: str) -> None:
        for i, record in enumerate(records):
            where = place(records, i, self.source)
            if isinstance(record, dict) and "text" in record:
                if not isinstance(record["text"], str):
                    raise DataError(f"{where}: field 'text': expected a string")
                self.texts.append(record["text"])
            else:
                self.chats.append(to_messages(record, where, fmt))

    def pool(
        self, tokenizer: PreTrainedTokenizerBase, max_length: int, completion_only: bool
    ) -> list[Example]:
        """Every replay example: text packed into blocks, chats cut to `max_length`."""
        blocks, _ = pack_blocks(tokenizer, self.texts, max_length) if self.texts else ([], 0)
        chats = []
        for messages in self.chats:
            ids, labels = tokenize_chat(tokenizer, messages, completion_only)
            chats.append({"input_ids": ids[:max_length], "labels": labels[:max_length]})
        return blocks + chats

    def draw(self, pool: list[Example], n_task: int, seed: int) -> list[Example]:
        """The replay examples for `n_task` task examples: a seeded draw, the pool cycled if short."""
        k = replay_count(self.fraction, n_task)
        if k and not pool:
            raise DataError(f"{self.source}: the replay pool is empty (texts shorter than one block?)")
        rng = random.Random(seed)
        drawn = pool * (k // len(pool)) if pool else []
        drawn += rng.sample(pool, k - len(drawn))
        self.added = len(drawn)
        return drawn
