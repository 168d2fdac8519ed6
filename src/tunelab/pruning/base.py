"""The pruner interface and the statistics every pruning stage reports."""

from __future__ import annotations

import re

import torch
from torch import nn
from transformers import PreTrainedModel

# The weights unstructured pruning targets and sparsity is measured on: the blocks' linear layers.
# Embeddings and the (often tied) LM head are left dense, as in most LLM pruning papers.
BLOCK_LINEAR = r"(^|\.)layers\.\d+\..*(proj|fc\d?|dense|query_key_value)$"


class Pruner:
    """Turns a trained, merged model into a pruned one. `observe` sees the base before training."""

    name = "none"
    target_pattern = BLOCK_LINEAR

    def observe(self, base: nn.Module) -> None:
        """Look at the base model before the adapter changes it (recovery keeps its zeros)."""

    def prune(self, model: PreTrainedModel) -> PreTrainedModel:
        """The pruned model (in place where possible)."""
        raise NotImplementedError

    @property
    def enabled(self) -> bool:
        return True


class NoPruning(Pruner):
    """`prune=none`: the stage is skipped."""

    def __init__(self, name: str = "none") -> None:
        self.name = name

    @property
    def enabled(self) -> bool:
        return False


def target_linears(model: nn.Module, pattern: str = BLOCK_LINEAR) -> dict[str, nn.Linear]:
    """`{module name: nn.Linear}` of the layers whose names match `pattern`."""
    regex = re.compile(pattern)
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear) and regex.search(n)}


def sparsity_stats(model: nn.Module, pattern: str = BLOCK_LINEAR) -> dict[str, float]:
    """Parameter count, non-zeros, and the zero fraction over targeted weights and over all."""
    targets = [m.weight for m in target_linears(model, pattern).values()]
    target_n = sum(w.numel() for w in targets)
    target_zero = sum(int((w == 0).sum()) for w in targets)
    params = {id(p): p for p in model.parameters()}.values()  # tied weights once
    total = sum(p.numel() for p in params)
    zeros = sum(int((p == 0).sum()) for p in params)
    return {
        "params": total,
        "nonzero_params": total - zeros,
        "sparsity": target_zero / target_n if target_n else 0.0,
        "sparsity_all": zeros / total if total else 0.0,
    }


@torch.no_grad()
def zero_masks(model: nn.Module, pattern: str = BLOCK_LINEAR) -> dict[str, torch.Tensor]:
    """`{weight name: bool mask of its zeros}` for targeted weights that have any zero."""
    masks = {}
    for name, module in target_linears(model, pattern).items():
        zeros = module.weight == 0
        if zeros.any():
            masks[f"{name}.weight"] = zeros.clone()
    return masks
