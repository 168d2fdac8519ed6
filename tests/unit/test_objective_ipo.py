"""IPO against the paper's squared loss (Azar et al., 2023, eq. 17)."""

from __future__ import annotations

import math

from tests.unit.pref_helpers import gradient_signs, pair
from tunelab.objectives.ipo import IPOObjective

POLICY = ([-2.0, -7.5], [-3.0, -6.0])
REFERENCE = ([-2.5, -7.0], [-2.5, -6.5])


def test_loss_matches_the_paper():
    tau = 0.25
    out = IPOObjective(tau=tau).pair_loss(pair(*POLICY), pair(*REFERENCE))
    for i in range(2):
        h = (POLICY[0][i] - REFERENCE[0][i]) - (POLICY[1][i] - REFERENCE[1][i])
        assert math.isclose(out.losses[i].item(), (h - 1 / (2 * tau)) ** 2, rel_tol=1e-9)


def test_loss_is_zero_at_the_target_margin():
    tau = 0.1  # target margin 1/(2τ) = 5
    out = IPOObjective(tau=tau).pair_loss(pair([-1.0], [-6.0]), pair([-2.0], [-2.0]))
    assert math.isclose(out.losses.item(), 0.0, abs_tol=1e-12)


def test_gradient_pushes_chosen_up_and_rejected_down_below_the_target():
    up, down = gradient_signs(IPOObjective(), pair([-3.0, -5.0], [-4.0, -4.5], [2, 3], [2, 4]))
    assert up < 0 < down
