"""Recovery fine-tuning that keeps a pruned base's zeros (`prune=keep_zeros`).

A LoRA update B·A is dense, so merging it would refill every pruned weight. Instead of
constraining training, the mask is *re-applied at the end*: `observe` records which targeted
weights of the loaded base are exactly zero, and after training (adapter merged) those weights are
zeroed again. The saved `pruned/` model therefore has the base's sparsity exactly; `eval/` scores
the dense merged model and `pruned/` the re-masked one, so the cost of re-masking is measured,
not assumed. Works with every adapter that merges (LoRA family, full, freeze, ...).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel

from tunelab.core.config import ConfigError
from tunelab.pruning.base import BLOCK_LINEAR, Pruner, zero_masks


class KeepZeros(Pruner):
    """Zero again, after training, every targeted weight that was zero in the base."""

    def __init__(self, name: str, target_pattern: str = BLOCK_LINEAR) -> None:
        self.name = name
        self.target_pattern = target_pattern
        self.masks: dict[str, torch.Tensor] | None = None

    def observe(self, base: nn.Module) -> None:
        self.masks = zero_masks(base, self.target_pattern)

    @torch.no_grad()
    def prune(self, model: PreTrainedModel) -> PreTrainedModel:
        if self.masks is None:
            raise RuntimeError("KeepZeros.prune before observe(): the base's zeros are unknown")
        params = dict(model.named_parameters())
        for name, mask in self.masks.items():
            if name not in params or params[name].shape != mask.shape:
                raise ConfigError(
                    f"prune=keep_zeros: the trained model has no weight {name} of shape "
                    f"{tuple(mask.shape)}; was the base structurally changed in training?"
                )
            params[name].masked_fill_(mask.to(params[name].device), 0.0)
        return model
