"""Perplexity of held-out text: the language-modelling ability fine-tuning may erode."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from tunelab.data.sources import DataError, place, read_records
from tunelab.models.modes import in_eval_mode
from tunelab.world import tasks


def heldout_documents(
    task_names: list[str], n_docs: int, doc_chars: int = 120, split: str = "test"
) -> list[str]:
    """Documents in the pretraining corpus's raw form ("12+34=46\\n..."), built from `split` items.

    Items of the tasks alternate, as in the corpus; the base model never saw a test item.
    """
    pools = [tasks.load_split(name, split) for name in task_names]
    items = [ex for group in zip(*pools, strict=False) for ex in group]
    docs, current = [], ""
    for ex in items:
        current += ex.raw_text + "\n"
        if len(current) >= doc_chars:
            docs.append(current)
            current = ""
        if len(docs) == n_docs:
            break
    return docs


@torch.no_grad()
def token_nll(
    model: nn.Module, tokenizer: PreTrainedTokenizerBase, texts: list[str], batch_size: int, max_length: int
) -> tuple[float, int]:
    """(summed negative log-likelihood in nats, number of predicted tokens) over `texts`.

    Every token but each text's first is predicted from the tokens before it; texts longer than
    `max_length` tokens are truncated.
    """
    device = next(model.parameters()).device
    total, count = 0.0, 0
    side = tokenizer.padding_side
    tokenizer.padding_side = "right"  # positions then start at 0 for every text
    try:
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(
                texts[start : start + batch_size],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=max_length,
            ).to(device)
            logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
            # Prompt tuning prepends virtual tokens' positions: the text's are the last ones.
            logits = logits[:, -enc["input_ids"].shape[1] :]
            logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
            targets = enc["input_ids"][:, 1:]
            mask = enc["attention_mask"][:, 1:].bool()
            picked = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            total -= picked[mask].sum().item()
            count += int(mask.sum().item())
    finally:
        tokenizer.padding_side = side
    return total, count


@dataclass
class PerplexityTask:
    """Token-level perplexity, exp(mean NLL per predicted token), on held-out text.

    Without `path`, the text is `n_docs` tiny-world documents made of test items of `tasks`;
    with `path`, a local data file of `{"text": ...}` records (its first `n_docs`).
    """

    path: str | None = None
    tasks: tuple[str, ...] = ("arithmetic", "reverse")
    n_docs: int = 100
    max_length: int = 256
    split: str = "test"  # tiny-world split of the built-in documents ("validation" while tuning)

    def __post_init__(self) -> None:
        self.texts = self.load_texts()  # here, so a bad file stops the run before the model loads

    def load_texts(self) -> list[str]:
        """The held-out texts; DataError names the record of a file that has no usable `text`."""
        if self.path is None:
            return heldout_documents(list(self.tasks), self.n_docs, split=self.split)
        records = read_records(self.path, limit=self.n_docs)
        for i, record in enumerate(records):
            if not isinstance(record.get("text"), str) or not record["text"].strip():
                where = place(records, i, self.path)
                raise DataError(f"{where}: expected a non-empty string field 'text'")
        if not records:
            raise DataError(f"{self.path}: no records; expected {{'text': ...}} records")
        return [r["text"] for r in records]

    def run(self, model: nn.Module, tokenizer: PreTrainedTokenizerBase, batch_size: int) -> dict:
        """`{"perplexity": float, "nll": float, "tokens": int, "n": int}`."""
        with in_eval_mode(model):
            total, count = token_nll(model, tokenizer, self.texts, batch_size, self.max_length)
        nll = total / max(count, 1)
        return {"perplexity": math.exp(nll), "nll": nll, "tokens": count, "n": len(self.texts)}
