"""Unstructured magnitude pruning with `torch.nn.utils.prune`, made permanent before saving.

Han et al., 2015, "Learning both Weights and Connections for Efficient Neural Networks"
(arXiv:1506.02626): zero the weights of smallest magnitude. `scope=global` ranks all targeted
weights together (layers end up with different sparsities); `scope=layer` prunes every layer to
the same target sparsity.
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils import prune
from transformers import PreTrainedModel

from tunelab.core.config import ConfigError
from tunelab.pruning.base import BLOCK_LINEAR, Pruner, target_linears

SCOPES = ("global", "layer")


class MagnitudePruner(Pruner):
    """Zero the `sparsity` fraction of smallest-|w| weights of the blocks' linear layers."""

    def __init__(self, name: str, sparsity: float, scope: str = "global", target_pattern: str = BLOCK_LINEAR):
        if not 0.0 <= sparsity < 1.0:
            raise ConfigError(f"prune.sparsity={sparsity}: expected a fraction in [0, 1)")
        if scope not in SCOPES:
            raise ConfigError(f"prune.scope={scope!r}: expected one of {SCOPES}")
        self.name = name
        self.sparsity = sparsity
        self.scope = scope
        self.target_pattern = target_pattern

    def prune(self, model: PreTrainedModel) -> PreTrainedModel:
        modules = list(target_linears(model, self.target_pattern).values())
        if not modules:
            raise ConfigError(f"prune.target_pattern={self.target_pattern!r} matches no nn.Linear")
        magnitude_prune(modules, self.sparsity, self.scope)
        return model


def magnitude_prune(modules: list[nn.Linear], sparsity: float, scope: str) -> None:
    """Prune the modules' weights in place and remove the reparametrisation (permanent zeros)."""
    params = [(m, "weight") for m in modules]
    if scope == "global":
        prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=sparsity)
    else:
        for module, name in params:
            prune.l1_unstructured(module, name, amount=sparsity)
    for module, name in params:
        prune.remove(module, name)  # weight = weight_orig * mask, as a plain parameter again
