"""KTO: Ethayarajh et al., 2024, "KTO: Model Alignment as Prospect Theoretic Optimization",
arXiv:2402.01306 (eq. 8).

Unpaired data: each completion is labelled desirable or undesirable. With r = log πθ(y|x) -
log πref(y|x) and z0 = max(0, mean r over mismatched (x, y') pairs of the batch), detached:
L = λD (1 - σ(β(r - z0))) for desirable y and λU (1 - σ(β(z0 - r))) for undesirable y.
An unpaired batch holds 2B rows: [:B] the examples, [B:] prompt i with completion i-1 (for z0).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from tunelab.objectives.base import Objective, ObjectiveOutput
from tunelab.objectives.preference import (
    PairLogps,
    Reference,
    logps_metrics,
    masked_mean,
    model_sequence_logps,
    reward_metrics,
)


class KTOObjective(Objective):
    """Prospect-theoretic value of each completion against the batch's KL baseline z0."""

    batch_kind = "unpaired"
    needs_reference = True

    def __init__(
        self,
        name: str = "kto",
        beta: float = 0.1,
        desirable_weight: float = 1.0,
        undesirable_weight: float = 1.0,
        precompute_reference: bool = False,
    ) -> None:
        super().__init__(name)
        self.precompute_reference = precompute_reference
        self.beta = beta
        self.desirable_weight = desirable_weight
        self.undesirable_weight = undesirable_weight

    def kto_loss(self, logratio: Tensor, kl_logratio: Tensor, desirable: Tensor) -> tuple[Tensor, Tensor]:
        """Per-example losses and the KL baseline z0 from log-ratios of examples and KL rows."""
        z0 = kl_logratio.mean().clamp(min=0).detach()
        desirable_losses = self.desirable_weight * (1 - torch.sigmoid(self.beta * (logratio - z0)))
        undesirable_losses = self.undesirable_weight * (1 - torch.sigmoid(self.beta * (z0 - logratio)))
        return torch.where(desirable, desirable_losses, undesirable_losses), z0

    def __call__(
        self, model: nn.Module, batch: dict[str, Tensor], reference: Reference | None = None
    ) -> ObjectiveOutput:
        if reference is None:
            raise ValueError("objective 'kto' needs a reference model; none was given")
        logps, tokens = model_sequence_logps(model, batch)
        ref_logps, _ = reference.sequence_logps(batch)
        b = batch["desirable"].shape[0]
        logratio = logps - ref_logps
        losses, z0 = self.kto_loss(logratio[:b], logratio[b:], batch["desirable"])
        desirable = batch["desirable"].float()
        rewards = self.beta * logratio[:b].detach()
        metrics = {
            "rewards/chosen": masked_mean(rewards, desirable),
            "rewards/rejected": masked_mean(rewards, 1 - desirable),
            "logps/chosen": masked_mean(logps[:b], desirable),
            "logps/rejected": masked_mean(logps[:b], 1 - desirable),
            "kl": z0,
        }
        metrics["rewards/margins"] = metrics["rewards/chosen"] - metrics["rewards/rejected"]
        return ObjectiveOutput(loss=losses.mean(), supervised_tokens=tokens[:b].sum(), metrics=metrics)

    @torch.no_grad()
    def pair_metrics(
        self, model: nn.Module, batch: dict[str, Tensor], reference: Reference | None = None
    ) -> dict[str, Tensor]:
        """Held-out (chosen, rejected) pairs scored by KTO's implicit reward β·log-ratio."""
        policy = PairLogps.split(*model_sequence_logps(model, batch))
        ref = PairLogps.split(*reference.sequence_logps(batch))
        chosen = self.beta * (policy.chosen - ref.chosen)
        rejected = self.beta * (policy.rejected - ref.rejected)
        return reward_metrics(chosen, rejected) | logps_metrics(policy)
