"""PPO's pieces against hand computations: GAE, token rewards, value clipping, whitening."""

from __future__ import annotations

import pytest
import torch

from tunelab.objectives.ppo import clipped_value_loss, gae, token_rewards, whiten


def test_gae_hand_worked_example():
    # Position 0 is prompt; γ = 0.9, λ = 0.8 (γλ = 0.72), V after the last token is 0.
    # t=3: δ = 1.0 - 0.3 = 0.7                       A = 0.7
    # t=2: δ = 0.2 + 0.9·0.3 - 0.4 = 0.07            A = 0.07 + 0.72·0.7 = 0.574
    # t=1: δ = 0.1 + 0.9·0.4 - 0.5 = -0.04           A = -0.04 + 0.72·0.574 = 0.37328
    rewards = torch.tensor([[0.0, 0.1, 0.2, 1.0]])
    values = torch.tensor([[9.0, 0.5, 0.4, 0.3]])
    mask = torch.tensor([[0, 1, 1, 1]])
    adv, ret = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    assert adv[0].tolist() == pytest.approx([0.0, 0.37328, 0.574, 0.7])
    assert ret[0].tolist() == pytest.approx([0.0, 0.87328, 0.974, 1.0])


def test_gae_treats_the_token_after_the_span_as_terminal():
    # Trailing padding (value 7, reward 5) must not leak into the last real token.
    # t=1: δ = 1 - 0.2 = 0.8; t=0: δ = 0.9·0.2 - 0.5 = -0.32, A = -0.32 + 0.72·0.8 = 0.256
    adv, _ = gae(
        torch.tensor([[0.0, 1.0, 5.0]]), torch.tensor([[0.5, 0.2, 7.0]]), torch.tensor([[1, 1, 0]]), 0.9, 0.8
    )
    assert adv[0].tolist() == pytest.approx([0.256, 0.8, 0.0])


def test_gae_with_gamma_lambda_one_is_reward_to_go_minus_value():
    rewards, values = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[0.5, 0.25, 1.0]])
    adv, _ = gae(rewards, values, torch.ones(1, 3), 1.0, 1.0)
    assert adv[0].tolist() == pytest.approx([6.0 - 0.5, 5.0 - 0.25, 3.0 - 1.0])


def test_token_rewards_put_the_score_on_the_last_completion_token():
    kl = torch.tensor([[0.0, 0.1, 0.2, 0.3]])
    rewards = token_rewards(torch.tensor([2.0]), kl, torch.tensor([[0, 1, 1, 0]]), kl_coef=0.5)
    assert rewards[0].tolist() == pytest.approx([0.0, -0.05, -0.1 + 2.0, 0.0])


def test_clipped_value_loss_by_hand():
    # V=1.0 from V_old=0.5 clipped to 0.7: max((1-2)², (0.7-2)²)/2 = 0.845, clip active.
    # V=0.6 within the clip: (0.6-0)²/2 = 0.18.
    loss, clipped = clipped_value_loss(
        torch.tensor([1.0, 0.6]), torch.tensor([0.5, 0.5]), torch.tensor([2.0, 0.0]), 0.2
    )
    assert loss.tolist() == pytest.approx([0.845, 0.18])
    assert clipped.tolist() == [True, False]


def test_whiten_uses_only_masked_positions():
    values = torch.tensor([[1.0, 3.0, 100.0]])
    out = whiten(values, torch.tensor([[1, 1, 0]]))
    assert out[0].tolist() == pytest.approx([-1.0, 1.0, 0.0], abs=1e-4)


def test_ppo_first_step_value_loss_regresses_on_hand_returns():
    # Step 1: policy == reference (KL 0) and the zero value head predicts 0, so the rewards are the
    # score on each completion's last token and R_t = (γλ)^(steps to the end) · score.
    from tests.unit.online_helpers import StubTokenizer, prompt_batch, tiny_llama
    from tunelab.objectives.ppo import PPOObjective
    from tunelab.objectives.reference import build_reference

    torch.manual_seed(2)
    model = tiny_llama()
    objective = PPOObjective(
        rewards=["tests.unit.online_helpers:first_letter"],
        lam=0.9,
        vf_coef=0.5,
        num_iterations=2,
        generation={"max_new_tokens": 3},
    )
    objective.prepare_model(model)
    objective.attach_tokenizer(StubTokenizer())
    out = objective(model, prompt_batch(), reference=build_reference(model))
    completions = objective._rollout["rollout"].completion_ids()
    texts = StubTokenizer().batch_decode(completions)
    squares = []
    for text, completion in zip(texts, completions, strict=True):
        score = float(ord(text[0]) % 5) if text else 0.0
        n = len(completion)
        squares += [(0.9 ** (n - 1 - t) * score) ** 2 for t in range(n)]
    value_loss = 0.5 * sum(squares) / len(squares)
    assert value_loss > 0  # the samples' scores differ from 0: the check is not vacuous
    assert out.metrics["value_loss"].item() == pytest.approx(value_loss, rel=1e-5)
    assert out.metrics["kl"].item() == pytest.approx(0.0, abs=1e-6)
    assert abs(out.metrics["policy_loss"].item()) < 1e-6  # whitened advantages, ratio 1
    out.loss.backward()
    assert model.value_head.weight.grad.abs().sum() > 0

    # The second step reuses the rollout: no new sample, same old log-probs.
    first = objective._rollout
    objective(model, prompt_batch(), reference=build_reference(model))
    assert objective._rollout is first and len(objective.reward_history) == 1
