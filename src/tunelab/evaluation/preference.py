"""Held-out preference pairs scored by the objective: `{prefix}/pref/rewards/accuracies` and co."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from tunelab.models.modes import in_eval_mode
from tunelab.objectives.reference import policy_as_reference


def _to(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def evaluate_preferences(objective, model: nn.Module, data, prefix: str, reference=None) -> dict[str, float]:
    """Pair-count-weighted means of `objective.pair_metrics` over the data's held-out pairs.

    Without a `reference`, an objective that needs one is scored against the model itself: the
    state before training, when policy and reference are the same (rewards are then 0).
    Returns {} when the data has no held-out set.
    """
    loader = data.heldout_dataloader()
    if loader is None:
        return {}
    if objective.needs_reference and reference is None:
        reference = policy_as_reference(model)
    device = next(model.parameters()).device
    sums: dict[str, float] = {}
    pairs = 0
    with in_eval_mode(model):
        for batch in loader:
            n = batch["input_ids"].shape[0] // 2
            metrics = objective.pair_metrics(model, _to(batch, device), reference)
            for name, value in metrics.items():
                sums[name] = sums.get(name, 0.0) + float(value) * n
            pairs += n
    return {f"{prefix}/pref/{name}": total / pairs for name, total in sums.items()} | {
        f"{prefix}/pref/n": pairs
    }
