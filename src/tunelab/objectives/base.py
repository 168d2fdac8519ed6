"""What every objective shares: the output type and token log-probabilities."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor, nn

IGNORE_INDEX = -100


@dataclass
class ObjectiveOutput:
    """The loss used for backward, its metrics, and how many tokens it was computed on."""

    loss: Tensor
    supervised_tokens: Tensor
    metrics: dict[str, Tensor] = field(default_factory=dict)


class Objective:
    """A training objective: batch -> loss. Subclasses declare their needs as class attributes.

    The training loop reads these attributes and never an objective's name.
    """

    batch_kind: ClassVar[str] = "sft"  # which data module format the objective consumes
    needs_reference: ClassVar[bool] = False  # whether a frozen reference model must run
    precompute_reference: bool = False  # reference log-probs computed once before training

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, model: nn.Module, batch: dict[str, Tensor], reference=None) -> ObjectiveOutput:
        """The loss of a batch; `reference` is the frozen model when `needs_reference` is set."""
        raise NotImplementedError

    def pair_metrics(self, model: nn.Module, batch: dict[str, Tensor], reference=None) -> dict[str, Tensor]:
        """Scores of a held-out preference batch: by default the training metrics and the loss."""
        out = self(model, batch, reference)
        return {**out.metrics, "loss": out.loss.detach()}

    def attach_tokenizer(self, tokenizer) -> None:
        """Receive the model's tokenizer (online objectives decode their samples); default ignore."""

    def prepare_model(self, model: nn.Module) -> None:
        """Add what the objective itself trains (a reward head) to the adapted model; default none."""

    def save_artifacts(self, model: nn.Module, tokenizer, out_dir: Path) -> dict[str, str]:
        """Write objective-specific artifacts under `out_dir`; returns metrics entries naming them."""
        return {}


def shifted_token_logprobs(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Log-prob of each next token and the mask of supervised positions.

    `logits[:, t]` predicts `labels[:, t + 1]`; positions labelled IGNORE_INDEX get log-prob 0.
    Returns two (batch, seq - 1) tensors.
    """
    # Prompt tuning / P-Tuning prepend virtual tokens and return their logits too: keep the last
    # seq positions, the ones that belong to the real tokens (a no-op for every other model).
    logits = logits[:, -labels.shape[1] : -1].float()
    targets = labels[:, 1:]
    mask = targets != IGNORE_INDEX
    safe_targets = targets.masked_fill(~mask, 0)
    logprobs = torch.log_softmax(logits, dim=-1).gather(-1, safe_targets.unsqueeze(-1)).squeeze(-1)
    return logprobs * mask, mask
