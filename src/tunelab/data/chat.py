"""Turn chat records into token ids and completion-only labels."""

from __future__ import annotations

from collections.abc import Sequence

from transformers import PreTrainedTokenizerBase

from tunelab.core.config import DataError
from tunelab.core.constants import IGNORE_INDEX
from tunelab.data.formats import ROLES, to_messages

__all__ = ["ROLES", "render_ids", "to_messages", "tokenize_chat"]


def render_ids(tokenizer: PreTrainedTokenizerBase, messages: Sequence[dict], prompt: bool) -> list[int]:
    """Token ids of the chat template applied to `messages` (with a generation prompt if asked)."""
    if not tokenizer.chat_template:
        raise DataError("the tokenizer has no chat template: set data.chat_template (a Jinja string or file)")
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
        prompt = render_ids(tokenizer, messages[:turn], prompt=True)
        if ids[: len(prompt)] != prompt:  # the masks would be wrong; say so instead
            raise DataError(
                f"the chat template does not render turns 0..{turn - 1} (with a generation prompt) as a "
                "prefix of the whole chat: completion-only labels need that; set data.completion_only=false "
                "or data.chat_template"
            )
        start = len(prompt)
        end = len(render_ids(tokenizer, messages[: turn + 1], prompt=False))
        labels[start:end] = ids[start:end]
    return ids, labels
