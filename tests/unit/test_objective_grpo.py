"""GRPO's pieces against hand computations: group advantages, ratio clipping, k3 KL, aggregation."""

from __future__ import annotations

import math

import pytest
import torch

from tunelab.core.config import ConfigError
from tunelab.objectives.generation import completion_mask, position_ids
from tunelab.objectives.grpo import GRPOObjective, aggregate, group_advantages
from tunelab.objectives.online import clipped_policy_loss, k3_kl


def test_group_advantages_match_hand_computation():
    # Group [1, 0, 0]: mean 1/3, unbiased std sqrt(((2/3)^2 + 2 (1/3)^2) / 2) = sqrt(1/3).
    # Group [2, 2, 2]: no spread, advantage 0 (eps keeps it finite).
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 2.0, 2.0, 2.0]), group_size=3)
    s = math.sqrt(1 / 3)
    expected = [(2 / 3) / s, (-1 / 3) / s, (-1 / 3) / s, 0.0, 0.0, 0.0]
    assert adv.tolist() == pytest.approx(expected, abs=1e-3)


def test_group_advantages_without_std_scaling_are_centred_rewards():
    adv = group_advantages(torch.tensor([3.0, 1.0, 0.5, 0.5]), group_size=2, scale=False)
    assert adv.tolist() == pytest.approx([1.0, -1.0, 0.0, 0.0])


def test_ratio_clipping_by_hand():
    # (ratio, advantage) -> loss = -min(r A, clip(r, 0.8, 1.2) A), and whether the clip won.
    ratios = torch.tensor([1.5, 1.5, 0.5, 0.9, 0.5])
    adv = torch.tensor([1.0, -1.0, -1.0, 1.0, 1.0])
    loss, clipped = clipped_policy_loss(ratios.log(), torch.zeros(5), adv, 0.2, 0.2)
    assert loss.tolist() == pytest.approx([-1.2, 1.5, 0.8, -0.9, -0.5])
    assert clipped.tolist() == [True, False, True, False, False]


def test_clip_higher_widens_only_the_upper_bound():
    ratios = torch.tensor([1.25, 0.7])
    loss, clipped = clipped_policy_loss(ratios.log(), torch.zeros(2), torch.tensor([1.0, -1.0]), 0.2, 0.28)
    assert loss.tolist() == pytest.approx([-1.25, 0.8])
    assert clipped.tolist() == [False, True]


def test_k3_kl_by_hand():
    # π = 0.5, π_ref = 0.25: d = log(0.5); k3 = 0.5 - log 0.5 - 1. Equal policies: 0.
    kl = k3_kl(torch.tensor([math.log(0.5), -1.3]), torch.tensor([math.log(0.25), -1.3]))
    assert kl.tolist() == pytest.approx([0.5 - math.log(0.5) - 1, 0.0])


def test_k3_is_an_unbiased_kl_estimate():
    # E_{x~π}[k3] = KL(π || π_ref) for two fixed categoricals, computed exactly.
    p, q = torch.tensor([0.7, 0.2, 0.1]), torch.tensor([0.3, 0.3, 0.4])
    expected = float((p * (p / q).log()).sum())
    assert float((p * k3_kl(p.log(), q.log())).sum()) == pytest.approx(expected)


def test_loss_aggregations_by_hand():
    per_token = torch.tensor([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    assert aggregate(per_token, mask, "sequence", 3).item() == pytest.approx((2.0 + 4.0) / 2)
    assert aggregate(per_token, mask, "token", 3).item() == pytest.approx(10.0 / 4)
    assert aggregate(per_token, mask, "constant", 3).item() == pytest.approx(10.0 / 6)


def test_completion_mask_stops_after_first_end_token():
    rows = torch.tensor([[5, 2, 0, 0], [5, 6, 7, 8], [2, 2, 0, 0]])
    assert completion_mask(rows, eos_id=2).long().tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]


def test_position_ids_start_at_each_rows_first_token():
    assert position_ids(torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])).tolist() == [[0, 0, 0, 1], [0, 1, 2, 3]]


def test_bad_grpo_config_is_a_config_error():
    with pytest.raises(ConfigError, match="group_size"):
        GRPOObjective(group_size=1)
    with pytest.raises(ConfigError, match="loss_aggregation"):
        GRPOObjective(loss_aggregation="mean")


def test_grpo_gradient_is_the_group_relative_policy_gradient():
    # With μ = 1 and β = 0 the GRPO loss's gradient is -1/N Σ_i A_i · mean_t ∇log π(o_i,t),
    # the advantages recomputed here from the rewards; log-probs recomputed on unpadded rows.
    from tests.unit.online_helpers import StubTokenizer, prompt_batch, row_logprobs, tiny_llama

    torch.manual_seed(1)
    model = tiny_llama()
    objective = GRPOObjective(
        rewards=["tests.unit.online_helpers:first_letter"],
        group_size=4,
        beta=0.0,
        generation={"max_new_tokens": 3, "temperature": 0.8},
    )
    objective.attach_tokenizer(StubTokenizer())
    batch = prompt_batch()
    out = objective(model, batch, reference=object())
    out.loss.backward()
    got = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()

    rollout = objective._rollout["rollout"]
    completions = rollout.completion_ids()
    texts = StubTokenizer().batch_decode(completions)
    rewards = torch.tensor([float(ord(t[0]) % 5) if t else 0.0 for t in texts]).view(2, 4)
    adv = ((rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True) + 1e-4)).view(-1)
    assert adv.abs().sum() > 0  # rewards differ within a group: the gradient is not trivially 0
    prompts = [[5, 6], [7, 8, 9]]
    surrogate = 0.0
    for i, completion in enumerate(completions):
        surrogate = surrogate - adv[i] * row_logprobs(model, prompts[i // 4], completion, 0.8).mean()
    (surrogate / 8).backward()
    for g, p in zip(got, model.parameters(), strict=True):
        assert torch.allclose(g, p.grad.float(), atol=1e-5)
    assert out.metrics["reward_mean"].item() == pytest.approx(rewards.mean().item())
    assert out.metrics["clip_fraction"].item() == 0.0


def test_token_logprobs_match_unpadded_rows_with_the_head_on_completions_only():
    # Left-padded prompts, a completion ended early (padding after its end token): every
    # completion token's log-prob equals a forward over that row alone, full vocabulary
    # softmax written out by hand; positions outside the completion get 0 and mask False.
    from tests.unit.online_helpers import EOS, PAD, row_logprobs, tiny_llama
    from tunelab.objectives.generation import Rollout
    from tunelab.objectives.online import token_logprobs

    model = tiny_llama()
    sequences = torch.tensor([[PAD, 5, 6, 3, EOS, PAD], [7, 8, 9, 4, 11, 12]])
    attention = torch.tensor([[0, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]])
    completion = torch.tensor([[0, 0, 0, 1, 1, 0], [0, 0, 0, 1, 1, 1]], dtype=torch.bool)
    rollout = Rollout(sequences, attention, completion, prompt_width=3, seconds=0.0)
    head_rows = []
    model.lm_head.register_forward_hook(lambda m, args, out: head_rows.append(args[0].shape[1]))
    logprobs, mask, hidden = token_logprobs(model, rollout, temperature=0.7, hidden=True)
    assert head_rows == [6 - 3 + 1]  # the completion's 3 positions and the prompt's last one
    assert logprobs.shape == mask.shape == (2, 5) and hidden.shape[:2] == (2, 5)
    assert mask.tolist() == [[False, False, True, True, False], [False, False, True, True, True]]
    assert logprobs[~mask].abs().sum().item() == 0.0
    for row, (prompt, reply) in enumerate([([5, 6], [3, EOS]), ([7, 8, 9], [4, 11, 12])]):
        expected = row_logprobs(model, prompt, reply, 0.7)
        assert torch.allclose(logprobs[row][mask[row]].double(), expected, atol=1e-5)


def constant_reward(prompts: list[str], completions: list[str], answers: list[str]) -> list[float]:
    """A reward that cannot tell replies apart (a toy reward on a chat model's sentences)."""
    return [0.0 for _ in completions]


def test_zero_reward_spread_is_logged_and_warned(caplog):
    """Every group ties: the metric says so (1.0) and a warning names the fix; spread: no warning."""
    from tests.unit.online_helpers import StubTokenizer, prompt_batch, tiny_llama

    torch.manual_seed(1)
    model = tiny_llama()
    flat = GRPOObjective(rewards=[f"{__name__}:constant_reward"], group_size=4, beta=0.0,
                         generation={"max_new_tokens": 3})  # fmt: skip
    flat.attach_tokenizer(StubTokenizer())
    with caplog.at_level("WARNING", logger="tunelab.objectives.grpo"):
        out = flat(model, prompt_batch(), reference=object())
    assert out.metrics["zero_spread_groups"].item() == 1.0
    assert out.loss.item() == 0.0  # β = 0 and every advantage 0: no learning signal at all
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and "all 2 groups" in warned[0] and "objective.rewards" in warned[0]
    assert flat.save_artifacts(model, StubTokenizer(), None)["online/zero_spread_rollouts"] == 1

    caplog.clear()
    spread = GRPOObjective(rewards=["tests.unit.online_helpers:first_letter"], group_size=4, beta=0.0,
                           generation={"max_new_tokens": 3, "temperature": 0.8})  # fmt: skip
    spread.attach_tokenizer(StubTokenizer())
    with caplog.at_level("WARNING", logger="tunelab.objectives.grpo"):
        out = spread(model, prompt_batch(), reference=object())
    texts = StubTokenizer().batch_decode(spread._rollout["rollout"].completion_ids())
    rewards = [[float(ord(t[0]) % 5) if t else 0.0 for t in texts[i : i + 4]] for i in (0, 4)]
    assert out.metrics["zero_spread_groups"].item() == sum(len(set(g)) == 1 for g in rewards) / 2
    assert any(len(set(g)) > 1 for g in rewards)  # some group has spread: the step learns, no warning
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
