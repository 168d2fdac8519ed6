"""The tokens a reply ends on: the model's generation config, the tokenizer's eos, and the chat
template's end-of-turn token.

Passing only `tokenizer.eos_token_id` to `generate` overrides the model's generation config:
Llama-3-Instruct's turns end on `<|eot_id|>` while its eos is `<|end_of_text|>`, so it would never
stop. The end-of-turn token is read off the template itself: the first token it writes after an
assistant message's content, when that token is a special token.
"""

from __future__ import annotations

from torch import nn
from transformers import PreTrainedTokenizerBase

PROBE = "tunelab-probe-reply"


def _as_list(value: object) -> list[int]:
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]


def template_end_of_turn(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The special token the chat template puts right after an assistant reply ([] if none)."""
    if not getattr(tokenizer, "chat_template", None):
        return []
    chat = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": PROBE}]
    try:
        text = tokenizer.apply_chat_template(chat, tokenize=False)
    except Exception:  # a template that refuses this probe chat: rely on the other sources
        return []
    if PROBE not in text:
        return []
    after = text[text.rindex(PROBE) + len(PROBE) :]
    ids = tokenizer(after, add_special_tokens=False)["input_ids"]
    special = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    return ids[:1] if ids and ids[0] in special else []


def stop_token_ids(model: nn.Module | None, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Every token id a reply may end on, in a stable order without repeats."""
    config = getattr(model, "generation_config", None) if model is not None else None
    ids = [
        *_as_list(getattr(config, "eos_token_id", None)),
        *_as_list(tokenizer.eos_token_id),
        *template_end_of_turn(tokenizer),
    ]
    return list(dict.fromkeys(ids))
