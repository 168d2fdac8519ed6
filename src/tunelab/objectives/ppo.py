"""PPO for RLHF: Ouyang et al., 2022, "Training language models to follow instructions with human
feedback", arXiv:2203.02155, on Schulman et al., 2017, "Proximal Policy Optimization Algorithms",
arXiv:1707.06347, with GAE (Schulman et al., 2015, arXiv:1506.02438).

One completion per prompt is sampled and scored (reward functions, or a reward model trained with
objective=reward through the `reward_model` reward). Per-token reward: -β·(log π_old - log π_ref)
at every completion token, plus the score at the last one. A value head on the policy's last
hidden state gives V; GAE turns rewards and values into advantages (whitened) and returns.
Loss: clipped policy surrogate + vf_coef · clipped value loss.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from tunelab.objectives.base import ObjectiveOutput
from tunelab.objectives.online import (
    OnlineObjective,
    clipped_policy_loss,
    masked_mean,
    reference_logprobs,
    token_logprobs,
)
from tunelab.objectives.rewards import RewardSet

HEAD = "value_head"  # the attribute the value head lives under on the trained model


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimates and returns over each row's masked (contiguous) span.

    δ_t = r_t + γ V_{t+1} - V_t (V after the last token is 0), A_t = δ_t + γλ A_{t+1};
    returns R_t = A_t + V_t. Positions outside `mask` get 0.
    """
    mask = mask.to(values.dtype)
    advantages = torch.zeros_like(values)
    next_value = torch.zeros_like(values[:, 0])
    next_advantage = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        advantages[:, t] = (delta + gamma * lam * next_advantage) * mask[:, t]
        # Outside the span the carried values reset to 0: the token after the last one is terminal.
        next_value = values[:, t] * mask[:, t]
        next_advantage = advantages[:, t]
    return advantages, (advantages + values) * mask


def whiten(values: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """Zero mean, unit variance over the masked positions."""
    mean = masked_mean(values, mask)
    var = masked_mean((values - mean) ** 2, mask)
    return (values - mean) * torch.rsqrt(var + eps) * mask


def clipped_value_loss(
    values: Tensor, old_values: Tensor, returns: Tensor, clip: float
) -> tuple[Tensor, Tensor]:
    """½·max((V - R)², (V_old + clip(V - V_old, ±c) - R)²) per token, and where the clip won."""
    clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    plain, bounded = (values - returns) ** 2, (clipped - returns) ** 2
    return 0.5 * torch.maximum(plain, bounded), bounded > plain


def token_rewards(score: Tensor, kl: Tensor, mask: Tensor, kl_coef: float) -> Tensor:
    """-kl_coef·KL at every completion token, plus each row's score at its last completion token."""
    rewards = -kl_coef * kl * mask
    last = mask.long().cumsum(-1).argmax(-1)  # first position where the count reaches its total
    rewards[torch.arange(rewards.shape[0], device=rewards.device), last] += score
    return rewards


class PPOObjective(OnlineObjective):
    """PPO with a value head sharing the policy's backbone; KL to the reference in the reward."""

    def __init__(
        self,
        name: str = "ppo",
        rewards: list | None = None,
        kl_coef: float = 0.05,
        gamma: float = 1.0,
        lam: float = 0.95,
        epsilon: float = 0.2,
        value_clip: float = 0.2,
        vf_coef: float = 0.1,
        generation: dict | None = None,
        num_iterations: int = 2,
    ) -> None:
        super().__init__(name, generation, num_iterations)
        self.rewards = RewardSet(rewards or ["exact_match"])
        self.kl_coef = kl_coef
        self.gamma, self.lam = gamma, lam
        self.epsilon = epsilon
        self.value_clip = value_clip
        self.vf_coef = vf_coef

    def prepare_model(self, model: nn.Module) -> None:
        """Attach the trainable value head (zero-initialised: V = 0 until it learns)."""
        if hasattr(model, HEAD):
            return
        # float32 whatever the backbone's dtype (quantised weights have none a head could use)
        device = model.get_input_embeddings().weight.device
        head = nn.Linear(model.config.hidden_size, 1, device=device, dtype=torch.float32)
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
        setattr(model, HEAD, head)

    def forward(self, model: nn.Module, rollout) -> tuple[Tensor, Tensor, Tensor]:
        """Token log-probs, their mask and values V_t of the state before each token."""
        logprobs, mask, hidden = token_logprobs(model, rollout, self.temperature, hidden=True)
        head = getattr(model, HEAD)
        values = head(hidden.float()).squeeze(-1)
        return logprobs, mask, values

    def make_rollout(self, model: nn.Module, batch: dict[str, Any], reference: Any) -> dict[str, Any]:
        rollout = self.generate(model, batch["input_ids"], batch["attention_mask"])
        score, reward_parts = self.rewards(batch["prompts"], self.decode(rollout), batch["answers"])
        score = score.to(rollout.sequences.device)
        with torch.no_grad():
            old_logprobs, mask, old_values = self.forward(model, rollout)
        kl = (old_logprobs - reference_logprobs(reference, rollout, self.temperature)) * mask
        rewards = token_rewards(score, kl, mask, self.kl_coef)
        advantages, returns = gae(rewards, old_values, mask, self.gamma, self.lam)
        metrics = self.rollout_metrics(rollout, score) | reward_parts
        metrics["kl"] = kl.sum(-1).mean()  # per-sequence KL (sum of per-token k1 estimates)
        return {
            "rollout": rollout,
            "old_logprobs": old_logprobs,
            "old_values": old_values,
            "advantages": whiten(advantages, mask),
            "returns": returns,
            "metrics": metrics,
        }

    def __call__(self, model: nn.Module, batch: dict[str, Any], reference: Any = None) -> ObjectiveOutput:
        r = self.current_rollout(model, batch, reference)
        logprobs, mask, values = self.forward(model, r["rollout"])
        pg, clipped = clipped_policy_loss(
            logprobs, r["old_logprobs"], r["advantages"], self.epsilon, self.epsilon
        )
        vf, vf_clipped = clipped_value_loss(values, r["old_values"], r["returns"], self.value_clip)
        policy_loss, value_loss = masked_mean(pg, mask), masked_mean(vf, mask)
        metrics = dict(r["metrics"])
        metrics |= {
            "policy_loss": policy_loss,
            "value_loss": value_loss,
            "clip_fraction": masked_mean(clipped.float(), mask),
            "value_clip_fraction": masked_mean(vf_clipped.float(), mask),
            "generation_share": torch.tensor(self.clock.share()),
        }
        loss = policy_loss + self.vf_coef * value_loss
        return ObjectiveOutput(loss, mask.sum(), {k: v.detach().float() for k, v in metrics.items()})

    def save_artifacts(self, model: nn.Module, tokenizer, out_dir: Path) -> dict:
        """The run summary, and the value head as `value_head.safetensors`."""
        head = getattr(model, HEAD)
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()},
            out_dir / f"{HEAD}.safetensors",
        )
        return {**super().save_artifacts(model, tokenizer, out_dir), "value_head": f"{HEAD}.safetensors"}
