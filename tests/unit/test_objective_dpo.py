"""DPO (and conservative DPO) against the paper's formula; ln 2 at step 0 on the tiny model."""

from __future__ import annotations

import math

import pytest
import torch
from peft import LoraConfig, get_peft_model

from tests.unit.pref_helpers import gradient_signs, logsigmoid, pair
from tunelab.data.preference import PreferenceDataModule
from tunelab.models.load import load_pretrained
from tunelab.objectives.dpo import DPOObjective
from tunelab.objectives.reference import build_reference
from tunelab.world.records import preference_records

POLICY = ([-2.0, -7.5, -1.0], [-3.0, -6.0, -4.0])
REFERENCE = ([-2.5, -7.0, -1.5], [-2.5, -6.5, -3.0])


@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_loss_matches_the_paper(eps):
    beta = 0.3
    out = DPOObjective(beta=beta, label_smoothing=eps).pair_loss(pair(*POLICY), pair(*REFERENCE))
    for i in range(3):
        h = (POLICY[0][i] - REFERENCE[0][i]) - (POLICY[1][i] - REFERENCE[1][i])
        expected = -(1 - eps) * logsigmoid(beta * h) - eps * logsigmoid(-beta * h)
        assert math.isclose(out.losses[i].item(), expected, rel_tol=1e-9)
        assert math.isclose(out.chosen_rewards[i].item(), beta * (POLICY[0][i] - REFERENCE[0][i]))
        assert math.isclose(out.rejected_rewards[i].item(), beta * (POLICY[1][i] - REFERENCE[1][i]))


def test_gradient_pushes_chosen_up_and_rejected_down():
    up, down = gradient_signs(DPOObjective(), pair([-3.0, -5.0], [-4.0, -4.5], [2, 3], [2, 4]))
    assert up < 0 < down  # descending the loss raises log p(chosen) and lowers log p(rejected)


@pytest.fixture(scope="module")
def tiny_pairs(tiny_model_dir):
    loaded = load_pretrained(str(tiny_model_dir))
    data = PreferenceDataModule(preference_records("arithmetic", "train", 6), batch_size=6)
    data.attach_tokenizer(loaded.tokenizer)
    return loaded.model, next(iter(data.train_dataloader()))


def test_step_zero_loss_is_ln2_with_an_adapter(tiny_pairs):
    model, batch = tiny_pairs
    policy = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear"))
    out = DPOObjective()(policy, batch, build_reference(policy))
    policy.unload()  # give the fixture's model back unwrapped
    assert math.isclose(out.loss.item(), math.log(2), rel_tol=1e-5)
    assert out.metrics["rewards/margins"].abs().item() < 1e-5
    assert out.supervised_tokens.item() == (batch["labels"][:, 1:] != -100).sum().item()


def test_step_zero_loss_is_ln2_with_a_frozen_copy(tiny_pairs):
    model, batch = tiny_pairs
    out = DPOObjective()(model, batch, build_reference(model))
    assert math.isclose(out.loss.item(), math.log(2), rel_tol=1e-5)


def test_training_metrics_have_trl_names(tiny_pairs):
    model, batch = tiny_pairs
    metrics = DPOObjective()(model, batch, build_reference(model)).metrics
    for name in ("chosen", "rejected", "margins", "accuracies"):
        assert f"rewards/{name}" in metrics
    assert {"logps/chosen", "logps/rejected"} <= metrics.keys()
    with torch.no_grad():
        assert metrics["logps/chosen"].item() < 0
