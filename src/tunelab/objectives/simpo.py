"""SimPO: Meng, Xia and Chen, 2024, "SimPO: Simple Preference Optimization with a Reference-Free
Reward", arXiv:2405.14734 (eq. 6).

L = -log σ(β/|yw| log πθ(yw|x) - β/|yl| log πθ(yl|x) - γ).
The reward is the length-normalised log-prob, so no reference model runs; γ is a target margin.
"""

from __future__ import annotations

from tunelab.core.config import ConfigError
from tunelab.objectives.preference import PairLogps, PairLoss, PreferenceObjective, bradley_terry


class SimPOObjective(PreferenceObjective):
    """Bradley–Terry on the length-normalised reward margin minus γ; rewards β·mean log-prob."""

    needs_reference = False
    length_normalize = True

    def __init__(
        self,
        name: str = "simpo",
        beta: float = 2.0,
        gamma: float | None = None,
        gamma_beta_ratio: float | None = 0.5,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(name)
        if (gamma is None) == (gamma_beta_ratio is None):
            raise ConfigError(
                "objective.gamma and objective.gamma_beta_ratio: set exactly one (the other null); "
                f"got gamma={gamma}, gamma_beta_ratio={gamma_beta_ratio}"
            )
        self.beta = beta
        self.gamma = gamma if gamma is not None else gamma_beta_ratio * beta
        self.label_smoothing = label_smoothing

    def pair_loss(self, policy: PairLogps, reference: PairLogps | None) -> PairLoss:
        chosen, rejected = self.beta * policy.chosen, self.beta * policy.rejected
        losses = bradley_terry(chosen - rejected - self.gamma, self.label_smoothing)
        return PairLoss(losses, chosen, rejected)
