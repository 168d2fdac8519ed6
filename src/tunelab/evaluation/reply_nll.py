"""Teacher-forced reply NLL on a tiny-world task: a score that needs no generation.

A real chat model answers the tiny world's questions in sentences ('3 + 4 = 7.'), so exact match
reads 0 before and after training; and greedy decoding of every item is what a CPU cannot afford on
every job of a comparison. The mean NLL per token of the expected reply given the prompt (chat
template, end-of-turn token included) moves with every step of learning or forgetting and costs one
forward pass per batch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from torch import nn
from transformers import PreTrainedTokenizerBase

from tunelab.evaluation.heldout import answer_nll
from tunelab.models.modes import in_eval_mode
from tunelab.world import tasks


def replies_nll(
    model: nn.Module, tokenizer: PreTrainedTokenizerBase, pairs: list[tuple[list, str]], batch_size: int
) -> tuple[float, int]:
    """(summed NLL in nats, token count) of each (prompt messages, reply)'s reply, in eval mode."""
    # Truncation never shortens a reply the model can read: the cap is its context length.
    max_length = getattr(getattr(model, "config", None), "max_position_embeddings", None) or 4096
    with in_eval_mode(model):
        return answer_nll(model, tokenizer, pairs, batch_size, max_length=max_length)


def tiny_world_reply_nll(
    model: nn.Module, tokenizer: PreTrainedTokenizerBase, items: list, batch_size: int
) -> tuple[float, int]:
    """(summed NLL in nats, token count) of each item's expected chat reply given its prompt."""
    return replies_nll(model, tokenizer, [(ex.messages()[:1], ex.completion) for ex in items], batch_size)


@dataclass
class ReplyNLLTask:
    """Mean NLL per token of the expected replies to the first `limit` items of a task's split."""

    task: str
    split: str = "test"
    limit: int | None = 400

    def run(self, model: nn.Module, tokenizer: PreTrainedTokenizerBase, batch_size: int) -> dict:
        """`{"answer_nll": float, "n": items, "tokens": reply tokens, "seconds": float}`."""
        items = tasks.load_split(self.task, self.split)[: self.limit]
        started = time.perf_counter()
        total, count = tiny_world_reply_nll(model, tokenizer, items, batch_size)
        return {
            "answer_nll": total / max(count, 1),
            "n": len(items),
            "tokens": count,
            "seconds": time.perf_counter() - started,
        }
