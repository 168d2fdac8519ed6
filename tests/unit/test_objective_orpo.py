"""ORPO against the paper's formula (Hong et al., 2024, eqs. 6-7), odds from mean log-probs."""

from __future__ import annotations

import math

import torch

from tests.unit.pref_helpers import FixedOutputs, ForbiddenReference, logsigmoid, pair
from tunelab.objectives.orpo import ORPOObjective


def log_odds(p_log: float) -> float:
    p = math.exp(p_log)
    return math.log(p / (1 - p))


def test_loss_matches_the_paper():
    lam = 0.3
    # Per-token mean log-probs (ORPO length-normalises) with their completion lengths.
    chosen, rejected, tokens = [-0.4, -1.2], [-0.9, -0.7], [2, 4]
    out = ORPOObjective(lambda_=lam).pair_loss(pair(chosen, rejected, tokens, [3, 3]), None)
    nll = (0.4 * 2 + 1.2 * 4) / (2 + 4)
    for i in range(2):
        ratio = log_odds(chosen[i]) - log_odds(rejected[i])
        assert math.isclose(out.losses[i].item(), nll - lam * logsigmoid(ratio), rel_tol=1e-7)
    assert math.isclose(out.metrics["nll_loss"].item(), nll, rel_tol=1e-9)


def test_gradient_pushes_chosen_up_and_rejected_down():
    policy = pair([-0.5, -1.0], [-0.8, -0.6], [2, 3], [2, 4], grad=True)
    ORPOObjective().pair_loss(policy, None).losses.mean().backward()
    assert policy.chosen.grad.sum() < 0 < policy.rejected.grad.sum()


def test_a_certain_completion_stays_finite():
    out = ORPOObjective().pair_loss(pair([0.0], [-2.0]), None)
    assert torch.isfinite(out.losses).all()


def test_runs_without_a_reference_on_mean_log_probs():
    # One pair, 4 positions, vocab 2: chosen labels 1 token, rejected labels 2 tokens.
    logits = torch.zeros(2, 4, 2)
    logits[0, 1] = torch.tensor([0.0, math.log(3.0)])  # predicts token 1 with p = 3/4
    labels = torch.tensor([[-100, -100, 1, -100], [-100, -100, 0, 0]])
    batch = {
        "input_ids": torch.zeros(2, 4, dtype=torch.long),
        "attention_mask": torch.ones(2, 4),
        "labels": labels,
    }
    out = ORPOObjective(lambda_=0.1)(FixedOutputs(logits), batch, ForbiddenReference())
    chosen, rejected = math.log(0.75), math.log(0.5)  # mean log-probs per token
    expected = -chosen - 0.1 * logsigmoid(log_odds(chosen) - log_odds(rejected))
    assert math.isclose(out.loss.item(), expected, rel_tol=1e-6)
