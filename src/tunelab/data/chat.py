"""Turn chat records into token ids and completion-only labels."""

from __future__ import annotations

from collections.abc import Sequence

from transformers import PreTrainedTokenizerBase

from tunelab.data.sources import DataError
from tunelab.objectives.base import IGNORE_INDEX

ROLES = ("system", "user", "assistant")


def to_messages(record: dict, where: str) -> list[dict[str, str]]:
    """Chat messages of a record: `messages`, or `prompt` + `completion` as a two-turn chat."""
    if "messages" in record:
        messages = record["messages"]
    elif "prompt" in record and "completion" in record:
        messages = [
            {"role": "user", "content": record["prompt"]},
            {"role": "assistant", "content": record["completion"]},
        ]
    else:
        raise DataError(f"{where}: expected a 'messages' list or 'prompt' and 'completion' fields")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise DataError(f"{where}: messages[{i}].role must be one of {ROLES}")
        if not isinstance(message.get("content"), str):
            raise DataError(f"{where}: messages[{i}].content must be a string")
    if not any(m["role"] == "assistant" for m in messages):
        raise DataError(f"{where}: no assistant message to learn from")
    return messages


def render_ids(tokenizer: PreTrainedTokenizerBase, messages: Sequence[dict], prompt: bool) -> list[int]:
    """Token ids of the chat template applied to `messages` (with a generation prompt if asked)."""
    text = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=prompt)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def tokenize_chat(
    tokenizer: PreTrainedTokenizerBase,
    messages: Sequence[dict],
    completion_only: bool = True,
) -> tuple[list[int], list[int]]:
    """Input ids and labels of a chat; with `completion_only`, only assistant turns are labelled.

    Each assistant turn's tokens are the difference between the conversation rendered up to and
    including that turn and the conversation rendered up to it with a generation prompt, so any
    template whose rendering of a prefix is a prefix of the whole works.
    """
    ids = render_ids(tokenizer, messages, prompt=False)
    if not completion_only:
        return ids, list(ids)
    labels = [IGNORE_INDEX] * len(ids)
    for turn, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = len(render_ids(tokenizer, messages[:turn], prompt=True))
        end = len(render_ids(tokenizer, messages[: turn + 1], prompt=False))
        labels[start:end] = ids[start:end]
    return ids, labels
