"""Generation with exact match on a tiny-world task: the harness's built-in quick eval."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from tunelab.models.modes import in_eval_mode
from tunelab.models.stop_tokens import stop_token_ids
from tunelab.world import tasks


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
        from tunelab.evaluation.heldout import answer_nll  # heldout imports `generate` from here

        pairs = [(ex.messages()[:1], ex.completion) for ex in self.items()]
        with in_eval_mode(model):
            total, count = answer_nll(model, tokenizer, pairs, batch_size, max_length=4096)
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
        if self.answer_nll and self.style == "chat":
            out["answer_nll"] = self.reply_nll(model, tokenizer, batch_size)
        return out


def generate(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    batch_size: int,
    max_new_tokens: int,
) -> tuple[list[str], int]:
    """Greedy completions of `prompts` (batched, left-padded, KV cache), special tokens stripped,
    and how many tokens were generated (each row up to and including its first end token)."""
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    device = next(model.parameters()).device
    completions: list[str] = []
    generated = 0
    try:
        with in_eval_mode(model):
            stop_ids = stop_token_ids(model, tokenizer)  # not one id: see stop_tokens
            for start in range(0, len(prompts), batch_size):
                enc = tokenizer(
                    prompts[start : start + batch_size],
                    return_tensors="pt",
                    padding=True,
                    add_special_tokens=False,
                ).to(device)
                out = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=stop_ids,
                    use_cache=True,
                )
                new_tokens = out[:, enc["input_ids"].shape[1] :]
                completions += tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
                generated += generated_tokens(new_tokens, stop_ids)
    finally:
        tokenizer.padding_side = side
    return completions, generated


def generated_tokens(new_tokens: torch.Tensor, eos_id: int | list[int] | None) -> int:
    """Tokens each row really generated: up to and including its first end token (`eos_id`: one id
    or several; the rest is padding `generate` adds to finished rows), all of them where none came."""
    if eos_id is None:
        return new_tokens.numel()
    ids = torch.tensor(eos_id if isinstance(eos_id, (list, tuple)) else [eos_id], device=new_tokens.device)
    is_end = torch.isin(new_tokens, ids)
    first_end = torch.where(is_end.any(-1), is_end.int().argmax(-1) + 1, new_tokens.shape[1])
    return int(first_end.sum())
