"""Sequence classification: a `num_labels`-way head on the last token, trained with cross-entropy.

The head is HF's `score` layer of `AutoModelForSequenceClassification` (a bias-free linear map of
the final hidden state at the last non-padding token), attached to the causal LM like the reward
model's head, so it trains under every adapter (LoRA, full, ...) with the adapter's own weights.
After training, `classifier/` is exported as an `AutoModelForSequenceClassification` that scores
exactly like the trained model. Accuracy on held-out items is the eval task `ClassificationAccuracy`.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import PreTrainedTokenizerBase

from tunelab.data.classification import collate_labelled
from tunelab.models.modes import in_eval_mode
from tunelab.objectives.base import Objective, ObjectiveOutput
from tunelab.objectives.reward_model import export_sequence_classifier

HEAD = "classification_head"  # the attribute the head lives under on the trained model


def last_token_logits(model: nn.Module, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    """(batch, num_labels) logits of the head at each row's last attended (right-padded) token."""
    out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
    hidden = out.hidden_states[-1]  # after the final norm, what HF's `score` reads
    last = attention_mask.sum(-1) - 1
    head = getattr(model, HEAD)
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return head(hidden[rows, last].to(head.weight.dtype)).float()


def accuracy(logits: Tensor, labels: Tensor) -> Tensor:
    """Fraction of rows whose highest logit is the label."""
    return (logits.argmax(-1) == labels).float().mean()


class ClassificationObjective(Objective):
    """Cross-entropy of the head's logits against one class label per sequence; no reference."""

    batch_kind = "classification"
    needs_reference = False

    def __init__(self, name: str, num_labels: int = 2) -> None:
        super().__init__(name)
        self.num_labels = num_labels

    def prepare_model(self, model: nn.Module) -> None:
        """Attach the trainable head (initialised like HF's `score`) unless it is there already."""
        if hasattr(model, HEAD):
            return
        weight = next(model.parameters())
        head = nn.Linear(
            model.config.hidden_size, self.num_labels, bias=False, device=weight.device, dtype=weight.dtype
        )
        nn.init.normal_(head.weight, std=getattr(model.config, "initializer_range", 0.02))
        setattr(model, HEAD, head)

    def __call__(self, model: nn.Module, batch: dict[str, Tensor], reference=None) -> ObjectiveOutput:
        logits = last_token_logits(model, batch["input_ids"], batch["attention_mask"])
        loss = F.cross_entropy(logits, batch["labels"])
        rows = torch.tensor(batch["labels"].shape[0], device=loss.device)
        return ObjectiveOutput(loss, rows, {"accuracy": accuracy(logits.detach(), batch["labels"])})

    def save_artifacts(self, model: nn.Module, tokenizer: PreTrainedTokenizerBase, out_dir: Path) -> dict:
        target = out_dir / "classifier"
        export_classifier(model, tokenizer, target)
        return {"classifier": str(target.relative_to(out_dir))}


def export_classifier(model: nn.Module, tokenizer: PreTrainedTokenizerBase, target: Path) -> None:
    """Save an `AutoModelForSequenceClassification` computing what `last_token_logits` computes."""
    export_sequence_classifier(model, tokenizer, target, HEAD)


class ClassificationAccuracy:
    """Eval task: accuracy of the trained head on labelled held-out records.

    Runs only on a model that has the head: the baseline evaluation (before the objective attaches
    it) reports nothing, and `majority` (the commonest label's share) is the chance reference.
    """

    def __init__(self, records: list[dict]) -> None:
        self.records = list(records)

    @torch.no_grad()
    def run(self, model: nn.Module, tokenizer: PreTrainedTokenizerBase, batch_size: int) -> dict:
        if not hasattr(model, HEAD):
            return {}
        device = next(model.parameters()).device
        labels = torch.tensor([r["label"] for r in self.records])
        preds = []
        with in_eval_mode(model):
            for start in range(0, len(self.records), batch_size):
                chunk = self.records[start : start + batch_size]
                rows = [
                    {
                        "input_ids": tokenizer(r["text"], add_special_tokens=False)["input_ids"],
                        "label": r["label"],
                    }
                    for r in chunk
                ]
                batch = collate_labelled(rows, tokenizer.pad_token_id)
                logits = last_token_logits(
                    model, batch["input_ids"].to(device), batch["attention_mask"].to(device)
                )
                preds.append(logits.argmax(-1).cpu())
        predicted = torch.cat(preds)
        majority = torch.bincount(labels).max().item() / len(labels)
        return {
            "accuracy": (predicted == labels).float().mean().item(),
            "majority": majority,
            "n": len(labels),
        }
