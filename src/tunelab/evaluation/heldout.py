"""The default evaluation of the user's own data: held-out prompts with reference answers.

Every held-out record becomes (prompt messages, reference answer): a chat's last assistant turn
(any SFT format), a preference pair's `chosen`, a prompt record's `answer`. Two scores, before and
after training:

- loss: the mean NLL (and perplexity) of the reference answer's tokens given the prompt, rendered
  with the model's own chat template (end-of-turn token included);
- generation: greedy replies to the prompts (batched, left-padded, stopping on the model's
  generation config and the template's end-of-turn tokens), compared with the references by an
  `AnswerMatcher` (exact, number, regex, contains; see tunelab.data.answers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from tunelab.core.constants import IGNORE_INDEX
from tunelab.data.answers import AnswerMatcher
from tunelab.data.collate import pad_batch
from tunelab.data.formats import to_messages
from tunelab.data.preference import pair_record, split_ids
from tunelab.data.prompts import prompt_record
from tunelab.data.sources import DataError, place
from tunelab.evaluation.generation import generate
from tunelab.models.modes import in_eval_mode

Messages = list[dict[str, str]]


def prompt_and_reference(record: dict, where: str, fmt: str = "auto") -> tuple[Messages, str]:
    """(prompt messages, reference answer) of a chat, preference or prompt record."""
    if isinstance(record, dict) and "chosen" in record:
        pair = pair_record(record, where)
        return pair["prompt"], pair["chosen"][-1]["content"]
    if isinstance(record, dict) and "answer" in record and "prompt" in record:
        item = prompt_record(record, where)
        return item["prompt"], item["answer"]
    messages = to_messages(record, where, fmt)
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    if last is None or last == 0:
        raise DataError(f"{where}: expected a prompt followed by an assistant reply to score against")
    return messages[:last], messages[last]["content"]


@torch.no_grad()
def answer_nll(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    items: list[tuple[Messages, str]],
    batch_size: int,
    max_length: int,
) -> tuple[float, int]:
    """(summed NLL in nats, token count) of each reference answer's tokens given its prompt."""
    device = next(model.parameters()).device
    rows = []
    for prompt, answer in items:
        prompt_ids, answer_ids = split_ids(tokenizer, prompt, [{"role": "assistant", "content": answer}])
        ids = (prompt_ids + answer_ids)[-max_length:]  # keep the answer; cut the prompt's start
        labels = ([IGNORE_INDEX] * len(prompt_ids) + answer_ids)[-max_length:]
        rows.append({"input_ids": ids, "labels": labels})
    total, count = 0.0, 0
    for start in range(0, len(rows), batch_size):
        batch = {k: v.to(device) for k, v in pad_batch(rows[start : start + batch_size], 0).items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        logits = logits[:, -batch["input_ids"].shape[1] :]  # prompt tuning's virtual tokens come first
        logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        targets = batch["labels"][:, 1:]
        mask = targets != IGNORE_INDEX
        picked = logprobs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        total -= picked[mask].sum().item()
        count += int(mask.sum().item())
    return total, count


@dataclass
class HeldoutTask:
    """Loss and generation accuracy on held-out records of the user's data (module docstring).

    `records` is the held-out part (`tunelab.data.split.read_split(..., part="test")` in
    conf/eval/heldout.yaml); `limit` caps how many are scored.
    """

    records: list[dict]
    source: str = "held-out data"
    format: str = "auto"
    match: str = "exact"
    pattern: str | None = None
    normalize: bool = True
    max_new_tokens: int = 64
    max_length: int = 512
    limit: int | None = 200
    generation: bool = True
    items: list[tuple[Messages, str]] = field(init=False)

    def __post_init__(self) -> None:
        # Here, so a bad record or match setting stops the run before the model loads.
        self.matcher = AnswerMatcher(self.match, self.pattern, self.normalize)
        chosen = [(place(self.records, i, self.source), r) for i, r in enumerate(self.records)][: self.limit]
        self.items = [prompt_and_reference(r, where, self.format) for where, r in chosen]

    def run(self, model: nn.Module, tokenizer: PreTrainedTokenizerBase, batch_size: int) -> dict:
        """`{"nll", "perplexity", "tokens", "accuracy", "n", "samples"}` (no items: `{"n": 0}`)."""
        if not self.items:
            return {"n": 0}
        with in_eval_mode(model):
            total, count = answer_nll(model, tokenizer, self.items, batch_size, self.max_length)
        nll = total / max(count, 1)
        out: dict = {"nll": nll, "perplexity": math.exp(nll), "tokens": count, "n": len(self.items)}
        if self.generation:
            out |= self.score_generation(model, tokenizer, batch_size)
        return out

    def score_generation(self, model: nn.Module, tokenizer: PreTrainedTokenizerBase, batch_size: int) -> dict:
        """Greedy replies compared with the references: accuracy and the per-item samples."""
        prompts = [
            tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
            for prompt, _ in self.items
        ]
        completions, _ = generate(model, tokenizer, prompts, batch_size, self.max_new_tokens)
        replies = [r.strip() for r in completions]
        hits = [self.matcher(reply, ref) for reply, (_, ref) in zip(replies, self.items, strict=True)]
        samples = [
            {
                "prompt": p[-1]["content"],
                "answer": ref,
                "prediction": reply,
                "correct": hit,
                "match": self.match,
            }
            for (p, ref), reply, hit in zip(self.items, replies, hits, strict=True)
        ]
        return {"accuracy": sum(hits) / len(hits), "samples": samples}
