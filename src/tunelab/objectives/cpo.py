"""CPO: Xu et al., 2024, "Contrastive Preference Optimization: Pushing the Boundaries of LLM
Performance in Machine Translation", arXiv:2401.08417 (eq. 7).

L = -log σ(β log πθ(yw|x) - β log πθ(yl|x)) + α·NLL(yw): DPO with a uniform reference (so no
reference model runs) plus a behaviour-cloning term on the chosen completions.
"""

from __future__ import annotations

from tunelab.objectives.preference import PairLogps, PairLoss, PreferenceObjective, bradley_terry


class CPOObjective(PreferenceObjective):
    """Reference-free Bradley–Terry on summed log-probs plus α·NLL; rewards β·log-prob."""

    needs_reference = False

    def __init__(self, name: str = "cpo", beta: float = 0.1, alpha: float = 1.0) -> None:
        super().__init__(name)
        self.beta = beta
        self.alpha = alpha

    def pair_loss(self, policy: PairLogps, reference: PairLogps | None) -> PairLoss:
        chosen, rejected = self.beta * policy.chosen, self.beta * policy.rejected
        nll = policy.chosen_nll()
        losses = bradley_terry(chosen - rejected) + self.alpha * nll
        return PairLoss(losses, chosen, rejected, {"nll_loss": nll})
