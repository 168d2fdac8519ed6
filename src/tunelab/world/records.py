"""Tiny-world tasks as data records, in the formats the data modules read."""

from __future__ import annotations

import random

from tunelab.world import tasks

# Chat turns as the tiny chat template renders them; the corpus must use the exact same text.
USER, ASSISTANT, END = "<|user|>", "<|assistant|>", "<|end|>"


def chat_records(task: str, split: str, size: int | None = None, seed: int = 0) -> list[dict]:
    """`size` items of a task split as `{"messages": [user, assistant]}` records."""
    return [{"messages": ex.messages()} for ex in tasks.sample(task, split, size, seed)]


def _chat_text(ex: tasks.Example) -> str:
    return f"{USER}{ex.prompt}{END}{ASSISTANT}{ex.answer}{END}"


def corpus_records(
    size: int, seed: int = 0, doc_chars: int = 120, chat_tasks: tuple[str, ...] = ("reverse",)
) -> list[dict]:
    """The pretraining corpus: `size` documents of raw task lines and a few chat turns.

    Arithmetic appears only as raw text ("12+34=46"), so the base model knows addition but has
    never been asked for it in a chat: SFT on the arithmetic chat task measurably unlocks it.
    Chat turns appear only for `chat_tasks`, so the chat format itself is not new to the model.
    """
    rng = random.Random(seed)
    pools = {name: tasks.load_split(name, "train") for name in tasks.task_names()}
    names = sorted(pools)
    docs = []
    for _ in range(size):
        parts: list[str] = []
        while sum(map(len, parts)) < doc_chars:
            name = rng.choice(names)
            ex = rng.choice(pools[name])
            as_chat = name in chat_tasks and rng.random() < 0.5
            parts.append(_chat_text(ex) if as_chat else ex.raw_text + "\n")
        docs.append({"text": "".join(parts)})
    return docs
