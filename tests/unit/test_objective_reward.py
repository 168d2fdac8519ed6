"""Reward model: Bradley–Terry on last-token scalars, and an export HF loads as a scorer."""

from __future__ import annotations

import math

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForSequenceClassification

from tests.unit.pref_helpers import FixedOutputs, logsigmoid
from tunelab.data.preference import PreferenceDataModule
from tunelab.models.load import load_pretrained
from tunelab.objectives.reward_model import (
    HEAD,
    RewardModelObjective,
    export_reward_model,
    last_token_rewards,
)
from tunelab.world.records import preference_records


def test_loss_is_bradley_terry_on_the_last_attended_token():
    # 1 pair, hidden size 2; the head reads position attention_mask.sum() - 1 of each row.
    hidden = torch.tensor([[[9.0, 9.0], [1.0, 2.0], [9.0, 9.0]], [[0.5, 0.0], [9.0, 9.0], [9.0, 9.0]]])
    model = FixedOutputs(torch.zeros(2, 3, 4), hidden)
    objective = RewardModelObjective("reward")
    objective.prepare_model(model)
    getattr(model, HEAD).weight.data = torch.tensor([[1.0, -0.5]])
    batch = {
        "input_ids": torch.zeros(2, 3, dtype=torch.long),
        "attention_mask": torch.tensor([[1, 1, 0], [1, 0, 0]]),
        "labels": torch.tensor([[-100, 5, -100], [-100, -100, -100]]),
    }
    out = objective(model, batch)
    r_chosen, r_rejected = 1.0 * 1 - 0.5 * 2, 1.0 * 0.5
    assert math.isclose(out.loss.item(), -logsigmoid(r_chosen - r_rejected), rel_tol=1e-6)
    assert out.metrics["rewards/accuracies"].item() == 0.0  # 0.0 < 0.5: the pair is ranked wrong
    assert math.isclose(out.metrics["rewards/margins"].item(), r_chosen - r_rejected, rel_tol=1e-6)


def test_gradient_raises_chosen_reward_and_lowers_rejected():
    rewards = torch.tensor([0.1, 0.3], requires_grad=True)  # chosen, rejected
    from tunelab.objectives.preference import bradley_terry

    bradley_terry(rewards[:1] - rewards[1:]).sum().backward()
    assert rewards.grad[0] < 0 < rewards.grad[1]


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_export_scores_like_training(tmp_path, tiny_model_dir, lora):
    loaded = load_pretrained(str(tiny_model_dir))
    model = loaded.model
    if lora:  # a trained adapter: export must merge it
        model = get_peft_model(model, LoraConfig(r=2, target_modules="all-linear", init_lora_weights=False))
    objective = RewardModelObjective("reward")
    objective.prepare_model(model)
    assert getattr(model, HEAD).weight.requires_grad
    data = PreferenceDataModule(preference_records("arithmetic", "test", 3), batch_size=3)
    data.attach_tokenizer(loaded.tokenizer)
    batch = next(iter(data.train_dataloader()))
    export_reward_model(model, loaded.tokenizer, tmp_path / "rm")
    scorer = AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm").eval()
    with torch.no_grad():
        exported = scorer(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        trained = last_token_rewards(model.eval(), batch)
    assert exported.shape == (6, 1)
    assert torch.allclose(exported.squeeze(-1), trained, atol=1e-5)
