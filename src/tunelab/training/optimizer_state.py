"""Optimizer state built before the first step, where torch builds it inside that step.

Why: torch's Adam creates its two moment tensors per weight lazily, in the first `step()`, when
the heap is full of that step's freed activations. They land in those holes, scattered between the
memory every later step allocates and frees, and the heap fragments around them. Built before the
first forward, they sit together below the step's churn. Same zeros, same step count, so the same
updates bit for bit (tests/unit/test_optimizer_state.py); full fine-tuning of SmolLM2-135M on CPU
peaks ~90-110 MiB lower at the same speed (docs/performance.md, "Adam's moments built before
the first forward").
"""

from __future__ import annotations

import torch
from torch import Tensor


def _step_counter(param: Tensor, group: dict) -> Tensor:
    # Where torch keeps it: on the weight's device for fused/capturable, else a CPU scalar.
    if group.get("fused") or group.get("capturable"):
        return torch.zeros((), dtype=torch.float32, device=param.device)
    dtype = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
    return torch.tensor(0.0, dtype=dtype, device="cpu")


def adam_state(param: Tensor, group: dict) -> dict[str, Tensor]:
    """The state `torch.optim.Adam`/`AdamW` give a weight at its first step: a zero step and zero moments."""
    state = {
        "step": _step_counter(param, group),
        "exp_avg": torch.zeros_like(param, memory_format=torch.preserve_format),
        "exp_avg_sq": torch.zeros_like(param, memory_format=torch.preserve_format),
    }
    if group.get("amsgrad"):
        state["max_exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
    return state


def build_adam_state(optimizer: torch.optim.Optimizer) -> int:
    """Fill the empty state of every trainable weight of a torch Adam/AdamW; how many were filled.

    Anything else (a DeepSpeed wrapper, bitsandbytes, GaLore) is left to build its own state. Frozen
    weights (LISA's inactive blocks) are left lazy too: they may never train.
    """
    if type(optimizer) not in (torch.optim.Adam, torch.optim.AdamW):
        return 0
    filled = 0
    for group in optimizer.param_groups:
        for param in group["params"]:
            if param.requires_grad and not optimizer.state[param]:
                optimizer.state[param] = adam_state(param, group)
                filled += 1
    return filled
