"""Sampling completions from the policy while it trains: batched HF `generate` with the KV cache.

Prompts arrive left-padded (so every row's completion starts at the same column); the result keeps
prompt and completion in one tensor with the masks the objectives need, plus the seconds spent, so
the online objectives can log which share of a training step went into generating.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from tunelab.models.modes import in_eval_mode


@dataclass
class GenerationSettings:
    """Sampling knobs (`objective.generation` in config)."""

    max_new_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    do_sample: bool = True


@dataclass
class Rollout:
    """Prompts with their sampled completions.

    `sequences` is (N, P + C): the left-padded prompt then the completion; `completion_mask`
    marks completion tokens up to and including the first end-of-sequence token.
    """

    sequences: Tensor
    attention_mask: Tensor
    completion_mask: Tensor
    prompt_width: int
    seconds: float

    def completion_ids(self) -> list[list[int]]:
        """Each row's completion tokens (end token included when it was produced)."""
        tail = self.sequences[:, self.prompt_width :]
        mask = self.completion_mask[:, self.prompt_width :]
        return [row[m].tolist() for row, m in zip(tail, mask, strict=True)]

    def completion_lengths(self) -> Tensor:
        return self.completion_mask.sum(-1)


def completion_mask(completions: Tensor, eos_id: int | list[int]) -> Tensor:
    """True up to and including each row's first end token (`eos_id`: one id or several, e.g. the
    model's eos and the chat template's end-of-turn); everything after it is padding."""
    ends = torch.as_tensor(
        eos_id if isinstance(eos_id, (list, tuple)) else [eos_id], device=completions.device
    )
    is_eos = torch.isin(completions, ends)
    eos_before = torch.cumsum(is_eos.long(), dim=-1) - is_eos.long()  # end tokens strictly before t
    return eos_before == 0


def position_ids(attention_mask: Tensor) -> Tensor:
    """Positions that start at 0 on each row's first real token, as `generate` numbers them."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":  # time the kernels, not their launch
        torch.cuda.synchronize(device)


@torch.no_grad()
def sample(
    model: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor,
    settings: GenerationSettings,
    pad_id: int,
    eos_id: int | list[int],
    disable_adapter: bool = False,
) -> Rollout:
    """Sample one completion per (left-padded) prompt row, in eval mode, with the KV cache.

    `eos_id` is every token a reply may end on (tunelab.models.stop_tokens.stop_token_ids);
    `disable_adapter` samples from the peft model's base (the frozen reference, as SPIN needs).
    """
    device = input_ids.device
    _sync(device)
    start = time.perf_counter()
    sampling = {"temperature": settings.temperature, "top_p": settings.top_p} if settings.do_sample else {}
    adapter_off = model.disable_adapter() if disable_adapter else nullcontext()
    with in_eval_mode(model), adapter_off:  # no dropout while sampling
        out = model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=settings.max_new_tokens,
            do_sample=settings.do_sample,
            top_k=None,  # only top_p filters, as configured
            use_cache=True,
            pad_token_id=pad_id,
            eos_token_id=list(eos_id) if isinstance(eos_id, (list, tuple)) else eos_id,
            **sampling,
        )
    _sync(device)
    seconds = time.perf_counter() - start
    width = input_ids.shape[1]
    done = completion_mask(out[:, width:], eos_id)
    completion = torch.cat([torch.zeros_like(attention_mask, dtype=torch.bool), done], dim=1)
    full_mask = torch.cat([attention_mask.bool(), done], dim=1).long()
    return Rollout(out, full_mask, completion, width, seconds)
