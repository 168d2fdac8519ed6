"""Forgetting of a pretrained chat model: how much less likely its own replies have become.

Before training (the `baseline/` phase) the base model answers a fixed set of general prompts,
greedily; those replies are kept. After training, the task scores the mean NLL per token of the
same replies under the tuned model. The rise is an estimate of how far the model drifted from its
base on what it could already do, without a judge or a labelled benchmark (the base's replies have
low NLL under the base by construction). It is the probe for a real model, whose pretrained skills
the tiny world's untrained tasks do not measure.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from importlib import resources

from torch import nn
from transformers import PreTrainedTokenizerBase

from tunelab.core.config import ConfigError
from tunelab.evaluation.generation import generate
from tunelab.evaluation.reply_nll import replies_nll

PROMPTS_FILE = "general_prompts.txt"


def general_prompts() -> list[str]:
    """The shipped general-domain prompts, one per line (tunelab/evaluation/assets)."""
    text = resources.files("tunelab.evaluation").joinpath("assets", PROMPTS_FILE).read_text()
    return [line.strip() for line in text.splitlines() if line.strip()]


@dataclass
class OwnReplyNLLTask:
    """Mean NLL per token of the base model's own greedy replies to general prompts.

    The first `run` in a process generates the replies (the run's baseline phase, on the untouched
    base); later runs score them. So `eval.before` must be true, or the tuned model would write them.
    """

    before: bool = True
    limit: int | None = None
    max_new_tokens: int = 48
    replies: list[str] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.before:
            raise ConfigError(
                "own-reply task: needs eval.before=true "
                "(the base model's replies are written in the baseline phase)"
            )

    def prompts(self) -> list[list[dict[str, str]]]:
        """The first `limit` general prompts as one-turn chats."""
        return [[{"role": "user", "content": p}] for p in general_prompts()[: self.limit]]

    def write_replies(self, model: nn.Module, tokenizer: PreTrainedTokenizerBase, batch_size: int) -> None:
        """Greedy replies of the model as it is now (the base: this runs in the baseline phase)."""
        texts = [
            tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
            for chat in self.prompts()
        ]
        self.replies, _ = generate(model, tokenizer, texts, batch_size, self.max_new_tokens)

    def run(self, model: nn.Module, tokenizer: PreTrainedTokenizerBase, batch_size: int) -> dict:
        """`{"answer_nll": float, "n": prompts, "tokens": reply tokens, "seconds": float}`."""
        started = time.perf_counter()
        if self.replies is None:
            self.write_replies(model, tokenizer, batch_size)
        pairs = list(zip(self.prompts(), self.replies, strict=True))
        total, count = replies_nll(model, tokenizer, pairs, batch_size)
        return {
            "answer_nll": total / max(count, 1),
            "n": len(pairs),
            "tokens": count,
            "seconds": time.perf_counter() - started,
            "samples": [{"prompt": p[-1]["content"], "reply": r} for p, r in pairs],
        }
