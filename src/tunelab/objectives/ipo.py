"""IPO: Azar et al., 2023, "A General Theoretical Paradigm to Understand Learning from Human
Preferences", arXiv:2310.12036 (eq. 17).

L = (h - 1/(2τ))², h = [log πθ(yw|x) - log πref(yw|x)] - [log πθ(yl|x) - log πref(yl|x)].
A squared loss regresses the log-ratio margin to a finite target instead of pushing it to
infinity, which is IPO's fix for DPO's over-fitting on deterministic preferences.
"""

from __future__ import annotations

from tunelab.objectives.preference import PairLogps, PairLoss, PreferenceObjective


class IPOObjective(PreferenceObjective):
    """Squared distance of the log-ratio margin to 1/(2τ); rewards τ·log-ratio (as TRL logs)."""

    needs_reference = True

    def __init__(
        self,
        name: str = "ipo",
        tau: float = 0.1,
        length_normalize: bool = False,
        precompute_reference: bool = False,
    ) -> None:
        super().__init__(name)
        self.precompute_reference = precompute_reference
        self.tau = tau
        # The paper sums log-probs; TRL averages them per token. Either, by config.
        self.length_normalize = length_normalize

    def pair_loss(self, policy: PairLogps, reference: PairLogps | None) -> PairLoss:
        chosen = policy.chosen - reference.chosen
        rejected = policy.rejected - reference.rejected
        losses = (chosen - rejected - 1 / (2 * self.tau)) ** 2
        return PairLoss(losses, self.tau * chosen, self.tau * rejected)
