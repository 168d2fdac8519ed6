"""Generation with exact match on a tiny-world task: the harness's built-in quick eval."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from tunelab.core.config import ConfigError
from tunelab.evaluation.generation import generate
from tunelab.evaluation.reply_nll import tiny_world_reply_nll
from tunelab.world import tasks

STYLES = ("chat", "raw")


@dataclass
class ExactMatchTask:
    """Greedy-decode answers to held-out items and count exact string matches.

    `style="chat"` asks through the chat template; `style="raw"` prompts with the plain text the
    base model was pretrained on. With `answer_nll` a chat task also reports the mean NLL per token
    of the expected reply given the prompt (teacher-forced): exact match of an untrained skill drops
    to 0 and stays there, its NLL keeps measuring how much of the skill is left. Off by default: it
    costs about as much as the generation.
    """

    task: str
    split: str = "test"
    limit: int | None = 200
    style: str = "chat"
    max_new_tokens: int = 8
    answer_nll: bool = False

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            expected = f"expected one of {STYLES}"
            raise ConfigError(f"exact-match task {self.task!r}: style={self.style!r}; {expected}")
        if self.answer_nll and self.style != "chat":
            raise ConfigError(
                f"exact-match task {self.task!r}: answer_nll=true needs style=chat "
                "(the reply NLL scores the chat template's expected reply; a raw task has none)"
            )

    def items(self) -> list:
        """The held-out items this task scores: the first `limit` of its split."""
        return tasks.load_split(self.task, self.split)[: self.limit]

    def prompts(self, tokenizer: PreTrainedTokenizerBase) -> tuple[list[str], list[str]]:
        """The prompt texts and the expected answers."""
        items = self.items()
        if self.style == "raw":
            return [ex.raw_prompt for ex in items], [ex.answer for ex in items]
        # In a chat the expected reply is the whole completion (the worked form where a task has one).
        texts = [
            tokenizer.apply_chat_template(ex.messages()[:1], tokenize=False, add_generation_prompt=True)
            for ex in items
        ]
        return texts, [ex.completion for ex in items]

    def reply_nll(self, model: nn.Module, tokenizer: PreTrainedTokenizerBase, batch_size: int) -> float:
        """Mean NLL per token of each item's expected chat reply (end-of-turn included) given its prompt."""
        total, count = tiny_world_reply_nll(model, tokenizer, self.items(), batch_size)
        return total / max(count, 1)

    @torch.no_grad()
    def run(self, model: nn.Module, tokenizer: PreTrainedTokenizerBase, batch_size: int) -> dict:
        """`{"exact_match": float, "n": int, "samples": [...]}` for this task."""
        prompts, answers = self.prompts(tokenizer)
        started = time.perf_counter()
        outputs, generated = generate(model, tokenizer, prompts, batch_size, self.max_new_tokens)
        seconds = time.perf_counter() - started
        # Raw-style answers end at the line break the corpus puts after each item.
        predictions = [out.split("\n")[0].strip() for out in outputs]
        hits = [pred == ans for pred, ans in zip(predictions, answers, strict=True)]
        samples = [
            {"prompt": p, "answer": a, "prediction": o, "correct": h}
            for p, a, o, h in zip(prompts, answers, predictions, hits, strict=True)
        ]
        out = {
            "exact_match": sum(hits) / max(len(hits), 1),
            "n": len(hits),
            "samples": samples,
            "generated_tokens": generated,
            "seconds": seconds,
            "tokens_per_sec": generated / seconds if seconds > 0 else 0.0,
        }
        if self.answer_nll:
            out["answer_nll"] = self.reply_nll(model, tokenizer, batch_size)
        return out
