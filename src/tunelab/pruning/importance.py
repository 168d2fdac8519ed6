"""Importance scores for structured pruning, registered by name (`prune.importance=l1`).

A score maps the weight slices that make up each unit (a head, a neuron, a layer) to one number
per unit; the least important units are removed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tunelab.core.config import ConfigError


def l1(groups: list[Tensor]) -> Tensor:
    """Sum of absolute weights per unit; each tensor is (units, ...)."""
    return sum(g.abs().flatten(1).sum(1) for g in groups)


def l2(groups: list[Tensor]) -> Tensor:
    """Euclidean norm of all of a unit's weights together (the "weight-norm" score)."""
    return torch.sqrt(sum(g.pow(2).flatten(1).sum(1) for g in groups))


IMPORTANCE: dict[str, Callable[[list[Tensor]], Tensor]] = {"l1": l1, "l2": l2}


def importance_fn(name: str) -> Callable[[list[Tensor]], Tensor]:
    """The registered score called `name`; ConfigError naming the choices otherwise."""
    if name not in IMPORTANCE:
        raise ConfigError(f"prune.importance={name!r}: expected one of {sorted(IMPORTANCE)}")
    return IMPORTANCE[name]


def keep_top(scores: Tensor, n_keep: int) -> Tensor:
    """Sorted indices of the `n_keep` highest-scoring units (ties: the lower index stays)."""
    order = torch.argsort(-scores, stable=True)[:n_keep]
    return torch.sort(order).values
