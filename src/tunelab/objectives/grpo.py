"""GRPO: Shao et al., 2024, "DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open
Language Models", arXiv:2402.03300, section 4.1.

For each prompt, G completions are sampled from the policy and scored by reward functions;
advantage A_i = (r_i - mean(r)) / std(r) within the group, shared by all tokens of completion i.
Per token: the clipped ratio surrogate plus β · KL(π || π_ref) by the k3 estimator.
Variants as options: `scale_rewards: false` drops the std division and `loss_aggregation:
constant` sums tokens over a fixed length (Dr. GRPO: Liu et al., 2025, arXiv:2503.20783);
`loss_aggregation: token` averages over all tokens of the batch and `epsilon_high` clips higher
(DAPO: Yu et al., 2025, arXiv:2503.14476).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor, nn

from tunelab.core.config import ConfigError
from tunelab.objectives.base import ObjectiveOutput
from tunelab.objectives.online import (
    OnlineObjective,
    clipped_policy_loss,
    k3_kl,
    masked_mean,
    reference_logprobs,
    token_logprobs,
)
from tunelab.objectives.rewards import RewardSet

AGGREGATIONS = ("sequence", "token", "constant")
log = logging.getLogger(__name__)


def group_advantages(rewards: Tensor, group_size: int, scale: bool = True, eps: float = 1e-4) -> Tensor:
    """(r - group mean) / (group std + eps) for rows laid out group after group.

    std is the unbiased sample std, as DeepSeekMath and TRL compute it; `scale=False` keeps
    r - mean (Dr. GRPO). A group whose rewards are all equal gets advantage 0.
    """
    groups = rewards.view(-1, group_size)
    centred = groups - groups.mean(dim=1, keepdim=True)
    if scale:
        centred = centred / (groups.std(dim=1, keepdim=True) + eps)
    return centred.reshape(-1)


def zero_spread_share(rewards: Tensor, group_size: int) -> Tensor:
    """The share of groups whose rewards are all equal: their advantages are 0, no learning signal."""
    groups = rewards.view(-1, group_size)
    return (groups.max(dim=1).values == groups.min(dim=1).values).float().mean()


def aggregate(per_token: Tensor, mask: Tensor, mode: str, max_tokens: int) -> Tensor:
    """Per-token losses to one number.

    sequence: mean over completions of each completion's token mean (the GRPO paper);
    token: mean over every completion token in the batch (DAPO);
    constant: sum over tokens / (completions × max_new_tokens) (Dr. GRPO, no length bias).
    """
    mask = mask.to(per_token.dtype)
    if mode == "sequence":
        return ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1)).mean()
    if mode == "token":
        return (per_token * mask).sum() / mask.sum().clamp(min=1)
    if mode == "constant":
        return (per_token * mask).sum() / (per_token.shape[0] * max_tokens)
    raise ValueError(f"loss_aggregation={mode!r}; expected one of {AGGREGATIONS}")


class GRPOObjective(OnlineObjective):
    """Group-relative policy optimisation with reward functions and a k3 KL penalty."""

    def __init__(
        self,
        name: str = "grpo",
        rewards: list | None = None,
        group_size: int = 8,
        beta: float = 0.04,
        epsilon: float = 0.2,
        epsilon_high: float | None = None,
        scale_rewards: bool = True,
        loss_aggregation: str = "sequence",
        generation: dict | None = None,
        num_iterations: int = 1,
    ) -> None:
        super().__init__(name, generation, num_iterations)
        if group_size < 2:
            raise ConfigError(f"objective.group_size={group_size}: GRPO needs at least 2 completions")
        if loss_aggregation not in AGGREGATIONS:
            raise ConfigError(f"objective.loss_aggregation={loss_aggregation!r}; expected {AGGREGATIONS}")
        self.rewards = RewardSet(rewards or ["exact_match"])
        self.group_size = group_size
        self.beta = beta
        self.eps_low = epsilon
        self.eps_high = epsilon if epsilon_high is None else epsilon_high
        self.scale_rewards = scale_rewards
        self.loss_aggregation = loss_aggregation
        self.flat_steps = 0  # rollouts whose every group had zero reward spread
        self.flat_shares: list[float] = []  # each rollout's share of zero-spread groups
        self.last_groups = 0

    def make_rollout(self, model: nn.Module, batch: dict[str, Any], reference: Any) -> dict[str, Any]:
        g = self.group_size
        ids = batch["input_ids"].repeat_interleave(g, dim=0)
        mask = batch["attention_mask"].repeat_interleave(g, dim=0)
        rollout = self.generate(model, ids, mask)
        prompts = [p for p in batch["prompts"] for _ in range(g)]
        answers = [a for a in batch["answers"] for _ in range(g)]
        rewards, reward_parts = self.rewards(prompts, self.decode(rollout), answers)
        rewards = rewards.to(ids.device)
        flat = zero_spread_share(rewards, g)
        self.last_groups = rewards.numel() // g
        self.flat_shares.append(float(flat))
        self.warn_if_flat(float(flat))
        old = None
        if self.num_iterations > 1:  # μ = 1: the old policy is the current one, detached
            with torch.no_grad():
                old = token_logprobs(model, rollout, self.temperature)[0]
        return {
            "rollout": rollout,
            "advantages": group_advantages(rewards, g, self.scale_rewards),
            "old_logprobs": old,
            "ref_logprobs": reference_logprobs(reference, rollout, self.temperature) if self.beta else None,
            "metrics": self.rollout_metrics(rollout, rewards) | reward_parts | {"zero_spread_groups": flat},
        }

    def save_artifacts(self, model: nn.Module, tokenizer, out_dir) -> dict[str, float]:
        """The online summary plus the run's share of groups with zero reward spread."""
        out = super().save_artifacts(model, tokenizer, out_dir)
        if self.flat_shares:
            out["online/zero_spread_groups"] = sum(self.flat_shares) / len(self.flat_shares)
            out["online/zero_spread_rollouts"] = self.flat_steps
        return out

    def warn_if_flat(self, share: float) -> None:
        """Warn (once per run, then every 50th such step) when every group of a step has one reward:
        the step's loss is only the KL term. Real chat models under toy rewards do this silently."""
        if share < 1.0:
            return
        self.flat_steps += 1
        if self.flat_steps == 1 or self.flat_steps % 50 == 0:
            log.warning(
                "GRPO: all %d groups of a rollout got equal rewards (%d such rollouts so far): no "
                "advantage, no learning signal. Check that objective.rewards can score this model's "
                "replies (e.g. {name: answer, match: number}) and objective.generation.max_new_tokens.",
                self.last_groups,
                self.flat_steps,
            )

    def __call__(self, model: nn.Module, batch: dict[str, Any], reference: Any = None) -> ObjectiveOutput:
        r = self.current_rollout(model, batch, reference)
        logprobs, mask = token_logprobs(model, r["rollout"], self.temperature)
        old = logprobs.detach() if r["old_logprobs"] is None else r["old_logprobs"]
        advantages = r["advantages"].unsqueeze(-1)  # one per completion, shared by its tokens
        per_token, clipped = clipped_policy_loss(logprobs, old, advantages, self.eps_low, self.eps_high)
        metrics = dict(r["metrics"])
        if r["ref_logprobs"] is not None:
            kl = k3_kl(logprobs, r["ref_logprobs"])
            per_token = per_token + self.beta * kl
            metrics["kl"] = masked_mean(kl.detach(), mask)
        loss = aggregate(per_token, mask, self.loss_aggregation, self.generation.max_new_tokens)
        metrics["clip_fraction"] = masked_mean(clipped.float(), mask)
        metrics["generation_share"] = torch.tensor(self.clock.share())
        return ObjectiveOutput(loss, mask.sum(), {k: v.detach().float() for k, v in metrics.items()})
