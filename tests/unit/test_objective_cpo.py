"""CPO against its paper's formula (Xu et al., 2024, eq. 7): reference-free DPO + NLL."""

from __future__ import annotations

import math

from tests.unit.pref_helpers import ForbiddenReference, gradient_signs, logsigmoid, pair
from tunelab.objectives.cpo import CPOObjective


def test_loss_matches_the_paper():
    beta, alpha = 0.5, 0.7
    chosen, rejected, tokens = [-4.0, -9.0], [-6.0, -8.0], [2, 3]
    out = CPOObjective(beta=beta, alpha=alpha).pair_loss(pair(chosen, rejected, tokens, [3, 3]), None)
    nll = (4.0 + 9.0) / (2 + 3)  # token-mean NLL of the chosen completions
    for i in range(2):
        expected = -logsigmoid(beta * chosen[i] - beta * rejected[i]) + alpha * nll
        assert math.isclose(out.losses[i].item(), expected, rel_tol=1e-9)
    assert math.isclose(out.metrics["nll_loss"].item(), nll)


def test_gradient_pushes_chosen_up_and_rejected_down():
    up, down = gradient_signs(CPOObjective())
    assert up < 0 < down


def test_declares_no_reference():
    objective = CPOObjective()
    assert objective.needs_reference is False
    objective.pair_loss(pair([-1.0], [-2.0]), None)  # the formula needs no reference log-probs
    assert ForbiddenReference  # the loop-level check lives in test_reference.py
