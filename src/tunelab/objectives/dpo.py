"""DPO: Rafailov et al., 2023, "Direct Preference Optimization", arXiv:2305.18290.

L = -log σ(β [(log πθ(yw|x) - log πref(yw|x)) - (log πθ(yl|x) - log πref(yl|x))]).
With label smoothing ε > 0 this is conservative DPO (Mitchell, 2023, "A note on DPO with noisy
preferences"): the preference label is assumed flipped with probability ε.
"""

from __future__ import annotations

from tunelab.objectives.preference import PairLogps, PairLoss, PreferenceObjective, bradley_terry


class DPOObjective(PreferenceObjective):
    """Bradley–Terry loss on the policy/reference log-ratio margin; rewards β·log-ratio."""

    needs_reference = True

    def __init__(
        self,
        name: str = "dpo",
        beta: float = 0.1,
        label_smoothing: float = 0.0,
        precompute_reference: bool = False,
    ) -> None:
        super().__init__(name)
        self.precompute_reference = precompute_reference
        self.beta = beta
        self.label_smoothing = label_smoothing

    def pair_loss(self, policy: PairLogps, reference: PairLogps | None) -> PairLoss:
        chosen = self.beta * (policy.chosen - reference.chosen)
        rejected = self.beta * (policy.rejected - reference.rejected)
        losses = bradley_terry(chosen - rejected, self.label_smoothing)
        return PairLoss(losses, chosen, rejected)
