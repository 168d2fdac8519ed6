"""ORPO: Hong, Lee and Thorne, 2024, "ORPO: Monolithic Preference Optimization without Reference
Model", arXiv:2403.07691 (eqs. 6-7).

L = L_SFT + λ·L_OR, L_OR = -log σ(log odds(yw|x) - log odds(yl|x)), odds = P/(1-P), with
P(y|x) = exp(mean token log-prob). No reference model runs.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tunelab.objectives.preference import PairLogps, PairLoss, PreferenceObjective, bradley_terry


def log_odds(mean_logp: Tensor) -> Tensor:
    """log(P / (1 - P)) from log P; clamped below 0 so a certain completion stays finite."""
    mean_logp = mean_logp.clamp(max=-1e-6)
    return mean_logp - torch.log(-torch.expm1(mean_logp))


class ORPOObjective(PreferenceObjective):
    """NLL on chosen plus λ times the odds-ratio loss; rewards λ·mean log-prob (as TRL logs)."""

    needs_reference = False
    length_normalize = True

    def __init__(self, name: str = "orpo", lambda_: float = 0.1) -> None:
        super().__init__(name)
        self.lambda_ = lambda_

    def pair_loss(self, policy: PairLogps, reference: PairLogps | None) -> PairLoss:
        log_odds_ratio = log_odds(policy.chosen) - log_odds(policy.rejected)
        odds_losses = bradley_terry(log_odds_ratio)
        # The SFT term is a token mean over chosen completions: spread it evenly over the pairs.
        nll = -(policy.chosen * policy.chosen_tokens).sum() / policy.chosen_tokens.sum().clamp(min=1)
        losses = nll + self.lambda_ * odds_losses
        metrics = {"nll_loss": nll, "log_odds_ratio": log_odds_ratio.mean()}
        return PairLoss(losses, self.lambda_ * policy.chosen, self.lambda_ * policy.rejected, metrics)
