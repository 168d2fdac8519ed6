"""Prompt data for the online objectives (GRPO, PPO, SPIN): prompts to sample from, with answers.

Each record is `{prompt, answer}`: the prompt a string (one user turn) or chat messages, the answer
the ground-truth assistant reply (what reward functions compare against, SPIN's "real" response).
Batches hold the prompts rendered with the chat template's generation prompt and left-padded, so
every row's completion starts at the same column of `generate`'s output.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import Tensor

from tunelab.core.constants import IGNORE_INDEX
from tunelab.data.base import TokenizedDataModule
from tunelab.data.preference import as_messages, split_ids
from tunelab.data.sources import DataError


def prompt_record(record: object, where: str, require_answer: bool = True) -> dict:
    """A validated `{prompt: messages, answer: str}` record; without `require_answer` a missing
    (or null) answer is "" (prompts for a reward that needs no reference, e.g. a reward model)."""
    if not isinstance(record, dict) or "prompt" not in record:
        raise DataError(f"{where}: expected a field 'prompt' (a string or chat messages)")
    answer = record.get("answer")
    if answer is None and not require_answer:
        answer = ""
    elif answer is None:
        raise DataError(f"{where}: expected a field 'answer' (the reference reply)")
    elif not isinstance(answer, str):
        raise DataError(f"{where}: field 'answer': expected a string, got {type(answer).__name__}")
    elif not answer.strip():
        raise DataError(f"{where}: field 'answer': blank (expected the reference answer)")
    prompt = as_messages(record["prompt"], "user", f"{where}: field 'prompt'")
    if not "".join(m["content"] for m in prompt).strip():
        raise DataError(f"{where}: field 'prompt': blank (expected a prompt to sample from)")
    return {"prompt": prompt, "answer": answer}


def collate_prompts(examples: list[dict], pad_id: int) -> dict[str, Tensor | list[str]]:
    """Left-padded prompt ids, right-padded answer ids (`target_ids`, -100 pad), and the strings."""
    width = max(len(e["prompt_ids"]) for e in examples)
    target_width = max(len(e["target_ids"]) for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    target_ids = torch.full((len(examples), target_width), IGNORE_INDEX, dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e["prompt_ids"])
        input_ids[row, width - n :] = torch.tensor(e["prompt_ids"])
        attention_mask[row, width - n :] = 1
        target_ids[row, : len(e["target_ids"])] = torch.tensor(e["target_ids"])
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "target_ids": target_ids,
        "prompts": [e["prompt_text"] for e in examples],
        "answers": [e["answer"] for e in examples],
    }


class PromptDataModule(TokenizedDataModule):
    """Prompts for sampling; `max_length` bounds the prompt (longer prompts keep their end)."""

    batch_kind = "prompt"

    def __init__(
        self,
        train: list[dict],
        source: str = "train",
        require_answer: bool = True,
        rewards: Any = None,
        **kw: Any,
    ) -> None:
        """`rewards` is the data config's declared reward (what scores a reply to these prompts),
        a fact the online objectives read (`objective.rewards: ${data.rewards}`); not used here."""
        self.source = source
        self.require_answer = require_answer  # false: records may lack `answer` (reward-model rewards)
        super().__init__(train, **kw)

    def validate(self, records: list[dict]) -> list[dict]:
        return [prompt_record(r, self.where(i), self.require_answer) for i, r in enumerate(records)]

    def encode(self, records: list[dict]) -> list[dict]:
        examples = []
        for r in records:
            answer = [{"role": "assistant", "content": r["answer"]}]
            prompt_ids, target_ids = split_ids(self.tokenizer, r["prompt"], answer)
            self.count_truncation(len(prompt_ids))
            prompt_ids = prompt_ids[-self.max_length :]  # keep the generation prompt at the end
            examples.append(
                {
                    "prompt_ids": prompt_ids,
                    "target_ids": target_ids,
                    "prompt_text": r["prompt"][-1]["content"],
                    "answer": r["answer"],
                }
            )
        return examples

    def collate_fn(self) -> Callable[[list[dict]], dict]:
        return partial(collate_prompts, pad_id=self.tokenizer.pad_token_id)
