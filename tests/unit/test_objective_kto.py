"""KTO against the paper's value function (Ethayarajh et al., 2024, eq. 8), KL baseline included."""

from __future__ import annotations

import math

import torch

from tests.unit.pref_helpers import FixedOutputs, FixedReference, sigmoid
from tunelab.objectives.kto import KTOObjective


def expected_losses(r, kl, desirable, beta, wd, wu):
    z0 = max(0.0, sum(kl) / len(kl))
    return [
        wd * (1 - sigmoid(beta * (ri - z0))) if d else wu * (1 - sigmoid(beta * (z0 - ri)))
        for ri, d in zip(r, desirable, strict=True)
    ]


def run(r, kl, desirable, beta=0.5, wd=1.0, wu=1.5):
    losses, z0 = KTOObjective(beta=beta, desirable_weight=wd, undesirable_weight=wu).kto_loss(
        torch.tensor(r), torch.tensor(kl), torch.tensor(desirable)
    )
    return losses.tolist(), z0.item(), expected_losses(r, kl, desirable, beta, wd, wu)


def test_loss_with_a_positive_kl_baseline():
    got, z0, want = run([0.4, -1.0, 2.0], [0.5, 1.0, 0.3], [True, False, True])
    assert math.isclose(z0, 0.6, rel_tol=1e-6)
    assert all(math.isclose(g, w, rel_tol=1e-6) for g, w in zip(got, want, strict=True))


def test_negative_kl_estimate_is_clamped_to_zero():
    got, z0, want = run([0.4, -1.0], [-0.5, -1.0], [True, False])
    assert z0 == 0.0
    assert all(math.isclose(g, w, rel_tol=1e-6) for g, w in zip(got, want, strict=True))


def test_kl_baseline_gets_no_gradient_and_signs_are_right():
    r = torch.tensor([0.2, 0.3], requires_grad=True)
    kl = torch.tensor([0.5, 0.7], requires_grad=True)
    losses, _ = KTOObjective().kto_loss(r, kl, torch.tensor([True, False]))
    losses.sum().backward()
    assert kl.grad is None or torch.all(kl.grad == 0)
    assert r.grad[0] < 0 < r.grad[1]  # desirable pushed up, undesirable pushed down


def test_call_uses_the_first_half_as_examples_and_the_second_as_kl_rows():
    # 2 examples + 2 KL rows, one labelled token each; vocab 2, uniform logits: log p = ln 1/2.
    logits = torch.zeros(4, 3, 2)
    labels = torch.tensor([[-100, -100, 1]] * 4)
    batch = {
        "input_ids": torch.zeros(4, 3, dtype=torch.long),
        "attention_mask": torch.ones(4, 3),
        "labels": labels,
        "desirable": torch.tensor([True, False]),
    }
    ref = FixedReference([-1.0, -0.2, -0.9, -0.1])
    out = KTOObjective(beta=0.5)(FixedOutputs(logits), batch, ref)
    lp = math.log(0.5)
    want = expected_losses([lp + 1.0, lp + 0.2], [lp + 0.9, lp + 0.1], [True, False], 0.5, 1.0, 1.0)
    assert math.isclose(out.loss.item(), sum(want) / 2, rel_tol=1e-6)
    assert ref.forwards == 1
    assert math.isclose(out.metrics["rewards/chosen"].item(), 0.5 * (lp + 1.0), rel_tol=1e-6)
    assert math.isclose(out.metrics["rewards/rejected"].item(), 0.5 * (lp + 0.2), rel_tol=1e-6)
