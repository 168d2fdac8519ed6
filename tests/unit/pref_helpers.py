"""Helpers for the preference-objective tests: fixed model outputs and hand-made log-probs."""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch
from torch import nn

from tunelab.objectives.preference import PairLogps


def logsigmoid(x: float) -> float:
    """log σ(x), written out: -log(1 + e^-x)."""
    return -math.log1p(math.exp(-x))


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def pair(chosen, rejected, chosen_tokens=None, rejected_tokens=None, grad: bool = False) -> PairLogps:
    """PairLogps from Python lists (token counts default to 1)."""
    c = torch.tensor(chosen, dtype=torch.float64, requires_grad=grad)
    r = torch.tensor(rejected, dtype=torch.float64, requires_grad=grad)
    ct = torch.tensor(chosen_tokens or [1] * len(chosen), dtype=torch.float64)
    rt = torch.tensor(rejected_tokens or [1] * len(rejected), dtype=torch.float64)
    return PairLogps(c, r, ct, rt)


def gradient_signs(objective, reference: PairLogps | None = None) -> tuple[float, float]:
    """d(mean loss)/d(chosen log-prob) and d/d(rejected log-prob) at a generic point."""
    policy = pair([-3.0, -5.0], [-4.0, -4.5], [2, 3], [2, 4], grad=True)
    objective.pair_loss(policy, reference).losses.mean().backward()
    return policy.chosen.grad.sum().item(), policy.rejected.grad.sum().item()


class FixedOutputs(nn.Module):
    """A stand-in LM whose forward returns given logits (and final hidden states)."""

    def __init__(self, logits: torch.Tensor, hidden: torch.Tensor | None = None) -> None:
        super().__init__()
        self.logits = logits
        self.hidden = hidden
        self.config = SimpleNamespace(hidden_size=None if hidden is None else hidden.shape[-1])
        self.dummy = nn.Parameter(torch.zeros(1))
        self.forwards = 0

    def forward(self, input_ids, attention_mask, output_hidden_states: bool = False, use_cache=None):
        self.forwards += 1
        return SimpleNamespace(logits=self.logits, hidden_states=(self.hidden,))


class FixedReference:
    """A reference that returns fixed sequence log-probs and counts its calls."""

    def __init__(self, logps: list[float]) -> None:
        self.logps = torch.tensor(logps)
        self.forwards = 0

    def sequence_logps(self, batch):
        self.forwards += 1
        return self.logps, torch.ones_like(self.logps)


class ForbiddenReference:
    """A reference that fails the test if anything runs it."""

    def sequence_logps(self, batch):
        raise AssertionError("a reference-free objective ran the reference model")
