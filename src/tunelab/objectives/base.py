"""What every objective shares: the output type and token log-probabilities."""

from __future__ import annotations

from dataclasses import dataclass, field
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

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, model: nn.Module, batch: dict[str, Tensor]) -> ObjectiveOutput:
        raise NotImplementedError


def shifted_token_logprobs(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Log-prob of each next token and the mask of supervised positions.

    `logits[:, t]` predicts `labels[:, t + 1]`; positions labelled IGNORE_INDEX get log-prob 0.
    Returns two (batch, seq - 1) tensors.
    """
    logits = logits[:, :-1].float()
    targets = labels[:, 1:]
    mask = targets != IGNORE_INDEX
    safe_targets = targets.masked_fill(~mask, 0)
    logprobs = torch.log_softmax(logits, dim=-1).gather(-1, safe_targets.unsqueeze(-1)).squeeze(-1)
    return logprobs * mask, mask
