"""SimPO against the paper's formula (Meng et al., 2024, eq. 6), length normalisation included."""

from __future__ import annotations

import math

import pytest
import torch

from tests.unit.pref_helpers import FixedOutputs, ForbiddenReference, gradient_signs, logsigmoid, pair
from tunelab.core.config import ConfigError
from tunelab.objectives.simpo import SimPOObjective


def test_loss_matches_the_paper():
    beta, gamma = 2.0, 0.8
    chosen, rejected = [-1.0, -2.5], [-1.5, -2.0]  # already per-token means
    out = SimPOObjective(beta=beta, gamma=gamma, gamma_beta_ratio=None).pair_loss(
        pair(chosen, rejected), None
    )
    for i in range(2):
        expected = -logsigmoid(beta * chosen[i] - beta * rejected[i] - gamma)
        assert math.isclose(out.losses[i].item(), expected, rel_tol=1e-9)


def test_gamma_from_ratio_and_paper_defaults():
    objective = SimPOObjective()
    assert (objective.beta, objective.gamma) == (2.0, 1.0)
    assert objective.needs_reference is False and objective.length_normalize is True


def test_gamma_and_ratio_together_name_both_keys():
    with pytest.raises(ConfigError, match=r"objective\.gamma and objective\.gamma_beta_ratio"):
        SimPOObjective(gamma=1.0, gamma_beta_ratio=0.5)


def test_log_probs_are_divided_by_completion_length():
    # One pair; vocab 2; uniform logits, so every labelled token has log-prob ln(1/2).
    # Chosen labels 1 token (sum -ln2, mean -ln2); rejected labels 3 (sum -3 ln2, mean -ln2).
    logits = torch.zeros(2, 5, 2)
    logits[1, 1] = torch.tensor([math.log(3.0), 0.0])  # rejected's first token: p = 3/4
    labels = torch.tensor([[-100, -100, -100, -100, 1], [-100, -100, 0, 1, 1]])
    batch = {
        "input_ids": torch.zeros(2, 5, dtype=torch.long),
        "attention_mask": torch.ones(2, 5),
        "labels": labels,
    }
    out = SimPOObjective(beta=2.0, gamma=0.5, gamma_beta_ratio=None)(
        FixedOutputs(logits), batch, ForbiddenReference()
    )
    chosen_mean = math.log(0.5)
    rejected_mean = (math.log(0.75) + 2 * math.log(0.5)) / 3
    expected = -logsigmoid(2.0 * chosen_mean - 2.0 * rejected_mean - 0.5)
    assert math.isclose(out.loss.item(), expected, rel_tol=1e-6)
    # logps/* report summed log-probs, as TRL does; rewards are β × the mean.
    assert math.isclose(
        out.metrics["logps/rejected"].item(), math.log(0.75) + 2 * math.log(0.5), rel_tol=1e-6
    )
    assert math.isclose(out.metrics["rewards/chosen"].item(), 2.0 * chosen_mean, rel_tol=1e-6)


def test_gradient_pushes_chosen_up_and_rejected_down():
    up, down = gradient_signs(SimPOObjective())
    assert up < 0 < down
