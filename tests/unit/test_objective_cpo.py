"""CPO against its paper's formula (Xu et al., 2024, eq. 7): reference-free DPO + NLL."""

from __future__ import annotations

import math

import torch

from tests.unit.pref_helpers import FixedOutputs, ForbiddenReference, gradient_signs, logsigmoid, pair
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


def test_runs_without_a_reference_on_summed_log_probs():
    # One pair, vocab 2, uniform logits: chosen labels 1 token, rejected 2, each log-prob ln 1/2.
    logits = torch.zeros(2, 4, 2)
    labels = torch.tensor([[-100, -100, -100, 1], [-100, -100, 0, 1]])
    batch = {
        "input_ids": torch.zeros(2, 4, dtype=torch.long),
        "attention_mask": torch.ones(2, 4),
        "labels": labels,
    }
    out = CPOObjective(beta=0.1, alpha=1.0)(FixedOutputs(logits), batch, ForbiddenReference())
    chosen, rejected = math.log(0.5), 2 * math.log(0.5)  # summed, not length-normalised
    expected = -logsigmoid(0.1 * chosen - 0.1 * rejected) - chosen
    assert math.isclose(out.loss.item(), expected, rel_tol=1e-6)
