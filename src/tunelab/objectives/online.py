"""What the online objectives (GRPO, PPO, SPIN) share: sampling, token log-probs, timing, metrics.

They consume prompt batches (data=prompts): left-padded prompt ids, the ground-truth completion
ids (`target_ids`, right-padded with -100), and the prompt and answer strings for reward functions.
The policy samples completions inside `training_step`, so `generation_share` (seconds generating /
seconds per training step) is logged to show what sampling costs.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from tunelab.core.constants import IGNORE_INDEX
from tunelab.models.modes import in_eval_mode
from tunelab.models.stop_tokens import stop_token_ids
from tunelab.objectives.base import Objective, shifted_token_logprobs
from tunelab.objectives.generation import GenerationSettings, Rollout, position_ids, sample


def token_logprobs(
    model: nn.Module, rollout: Rollout, temperature: float = 1.0, hidden: bool = False
) -> tuple[Tensor, ...]:
    """Log-prob of every completion token, its mask, and optionally the last hidden states.

    All three are (N, L - 1), aligned so that position t scores token t + 1 from the state at t.
    Positions follow the attention mask, as in `generate`, so left padding changes nothing.
    Logits are divided by the sampling temperature: the ratio and the KL are those of the
    distribution the completions were sampled from (as TRL computes them).
    The LM head runs only where a completion token is predicted (`logits_to_keep`: the last C + 1
    positions of the prompt-then-completion rows); earlier positions get log-prob 0, mask False.
    """
    width = rollout.sequences.shape[1]
    keep = width - rollout.prompt_width + 1  # the prompt's last position predicts the first token
    labels = rollout.sequences.masked_fill(~rollout.completion_mask, IGNORE_INDEX)[:, -keep:]
    out = model(
        input_ids=rollout.sequences,
        attention_mask=rollout.attention_mask,
        position_ids=position_ids(rollout.attention_mask),
        output_hidden_states=hidden,
        logits_to_keep=keep,
        use_cache=False,  # a training forward: no KV cache to build and drop
    )
    logprobs, mask = shifted_token_logprobs(out.logits / temperature, labels)
    before = width - keep  # the prompt positions whose next token is not a completion token
    logprobs, mask = F.pad(logprobs, (before, 0)), F.pad(mask, (before, 0))
    if hidden:
        return logprobs, mask, out.hidden_states[-1][:, :-1]
    return logprobs, mask


@torch.no_grad()
def reference_logprobs(reference: Any, rollout: Rollout, temperature: float = 1.0) -> Tensor:
    """Token log-probs under the frozen reference (tunelab.objectives.reference.ModelReference), eval mode."""
    model = reference.target
    with in_eval_mode(model), model.disable_adapter() if reference.disable_adapter else nullcontext():
        reference.forwards += 1
        return token_logprobs(model, rollout, temperature)[0]


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of `values` over the positions where `mask` holds."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1)


def clipped_policy_loss(
    logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, eps_low: float, eps_high: float
) -> tuple[Tensor, Tensor]:
    """PPO's clipped surrogate per token, and where the clip bound is the active branch.

    loss = -min(r A, clip(r, 1 - eps_low, 1 + eps_high) A), r = exp(logp - logp_old)
    (Schulman et al., 2017, arXiv:1707.06347, eq. 7; eps_high > eps_low is DAPO's clip-higher).
    """
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1 - eps_low, 1 + eps_high) * advantages
    was_clipped = clipped < unclipped  # the min picked the clipped term
    return -torch.minimum(unclipped, clipped), was_clipped


def k3_kl(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """Schulman's k3 estimator of KL(π || π_ref) per token: exp(d) - d - 1, d = log π_ref - log π.

    Unbiased, always >= 0 (http://joschu.net/blog/kl-approx.html); GRPO's KL term.
    """
    d = ref_logprobs - logprobs
    return torch.exp(d) - d - 1


class StepClock:
    """Seconds spent generating against seconds per training step.

    A step's wall time runs from one objective call to the next, so it includes backward and the
    optimizer; the share logged at step t is step t-1's (at step 0: the share of the call so far).
    """

    def __init__(self) -> None:
        self.call_starts: list[float] = []
        self.gen_seconds: list[float] = []

    def start(self) -> None:
        self.call_starts.append(time.perf_counter())
        self.gen_seconds.append(0.0)

    def add_generation(self, seconds: float) -> None:
        self.gen_seconds[-1] += seconds

    def share(self) -> float:
        """Generation share of the last complete step."""
        if len(self.call_starts) < 2:
            return self.gen_seconds[-1] / max(time.perf_counter() - self.call_starts[-1], 1e-9)
        return self.gen_seconds[-2] / max(self.call_starts[-1] - self.call_starts[-2], 1e-9)

    def summary(self) -> dict[str, float]:
        """Totals over the run (the last step, whose end is not seen here, left out)."""
        if len(self.call_starts) < 2:
            return {}
        wall = self.call_starts[-1] - self.call_starts[0]
        gen = sum(self.gen_seconds[:-1])
        return {"online/generation_seconds": gen, "online/generation_share": gen / max(wall, 1e-9)}


class OnlineObjective(Objective):
    """Base of the objectives that sample from the policy while training.

    `num_iterations` (μ in GRPO, PPO's epochs): each rollout is optimised on for μ consecutive
    steps (the prompt batches of the steps in between are skipped), so from the second step on
    the policy ratio differs from 1 and clipping acts. μ = 1 samples afresh every step.
    """

    batch_kind: ClassVar[str] = "prompt"
    needs_reference: ClassVar[bool] = True

    def __init__(self, name: str, generation: dict | None = None, num_iterations: int = 1) -> None:
        super().__init__(name)
        self.generation = GenerationSettings(**(generation or {}))
        self.num_iterations = num_iterations
        self.tokenizer = None
        self.clock = StepClock()
        self.reward_history: list[float] = []
        self._rollout: dict[str, Any] | None = None
        self._uses = 0

    def attach_tokenizer(self, tokenizer) -> None:
        self.tokenizer = tokenizer

    def generate(self, model: nn.Module, input_ids: Tensor, attention_mask: Tensor, **kw) -> Rollout:
        """Sample completions for prompt rows, timing it into this step's generation seconds."""
        if self.tokenizer is None:
            raise RuntimeError(f"objective {self.name!r}: attach_tokenizer() must run before training")
        rollout = sample(
            model,
            input_ids,
            attention_mask,
            self.generation,
            pad_id=self.tokenizer.pad_token_id,
            eos_id=stop_token_ids(model, self.tokenizer),
            **kw,
        )
        self.clock.add_generation(rollout.seconds)
        return rollout

    @property
    def temperature(self) -> float:
        """The temperature completions are sampled at (1 for greedy decoding)."""
        return self.generation.temperature if self.generation.do_sample else 1.0

    def decode(self, rollout: Rollout) -> list[str]:
        """Completion texts, special tokens stripped (what reward functions read)."""
        return self.tokenizer.batch_decode(rollout.completion_ids(), skip_special_tokens=True)

    def make_rollout(self, model: nn.Module, batch: dict[str, Any], reference: Any) -> dict[str, Any]:
        """Sample and score: everything the loss needs that does not depend on current weights."""
        raise NotImplementedError

    def current_rollout(self, model: nn.Module, batch: dict[str, Any], reference: Any) -> dict[str, Any]:
        """This step's rollout: a fresh one every `num_iterations` steps, else the cached one."""
        self.clock.start()
        if reference is None:
            raise ValueError(f"objective {self.name!r} needs a reference model; none was given")
        if self._rollout is None or self._uses >= self.num_iterations:
            self._rollout = self.make_rollout(model, batch, reference)
            self._uses = 0
            self.reward_history.append(float(self._rollout["metrics"]["reward_mean"]))
        self._uses += 1
        return self._rollout

    def rollout_metrics(self, rollout: Rollout, rewards: Tensor) -> dict[str, Tensor]:
        """Per-step metrics every online objective logs."""
        lengths = rollout.completion_lengths().float()
        return {
            "reward_mean": rewards.mean(),
            "reward_std": rewards.std() if rewards.numel() > 1 else torch.zeros(()),
            "completion_length": lengths.mean(),
        }

    def save_artifacts(self, model: nn.Module, tokenizer, out_dir) -> dict[str, float]:
        """Run-level summary: reward mean over the first and last tenth of the rollouts, timing."""
        out: dict[str, float] = dict(self.clock.summary())
        if self.reward_history:
            k = max(1, len(self.reward_history) // 10)
            out["online/reward_mean_first"] = sum(self.reward_history[:k]) / k
            out["online/reward_mean_last"] = sum(self.reward_history[-k:]) / k
            out["online/rollouts"] = len(self.reward_history)
        return out
