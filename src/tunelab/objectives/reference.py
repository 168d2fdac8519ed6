"""The frozen reference model of DPO-family objectives, built only when an objective needs one.

With a peft adapter the reference is the policy itself with its adapter disabled (peft's
`disable_adapter()` context), so no second copy of the weights is held. Any other model (full
fine-tuning, adapters that edit base weights) gets a frozen deep copy taken before training.
Either way the reference runs in eval mode under no_grad and counts its forwards, so tests can
check that reference-free objectives never run one.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from contextlib import nullcontext

import torch
from peft import PeftModel
from torch import Tensor, nn

from tunelab.models.modes import in_eval_mode
from tunelab.objectives.preference import model_sequence_logps


class ModelReference(nn.Module):
    """Summed completion log-probs from a model in eval mode, without gradients.

    `disable_adapter` runs the model with its peft adapter switched off. A model that is not the
    policy (a frozen copy) is registered as a submodule, so Lightning moves it with the policy.
    """

    def __init__(self, model: nn.Module, disable_adapter: bool = False, own: bool = False) -> None:
        super().__init__()
        if own:
            self.model = model
        else:
            self._policy = [model]  # a list hides the policy from nn.Module registration
        self.disable_adapter = disable_adapter
        self.forwards = 0
        self.cache: dict[bytes, tuple[float, int]] | None = None  # set by `precompute`

    @property
    def target(self) -> nn.Module:
        return self.model if "model" in self._modules else self._policy[0]

    @torch.no_grad()
    def sequence_logps(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """(summed log-prob of the labelled tokens, labelled-token count) of every row."""
        if self.cache is None:
            return self._forward(batch)
        keys = row_keys(batch)
        if not all(k in self.cache for k in keys):
            logps, counts = self._forward(batch)
            self.cache.update(zip(keys, zip(logps.tolist(), counts.tolist(), strict=True), strict=True))
        logps, counts = zip(*(self.cache[k] for k in keys), strict=True)
        device = batch["input_ids"].device
        return torch.tensor(logps, device=device), torch.tensor(counts, device=device)

    def precompute(self, batches: Iterable[dict[str, Tensor]], device: torch.device) -> None:
        """One pass over `batches` before training; later calls on the same rows read the cache.

        Rows are keyed by their tokens and labels, so any batching or shuffling of the same rows
        hits; rows never seen here (KTO's mismatched KL rows of a reshuffled epoch) run live.
        """
        self.cache = {}
        for batch in batches:
            self.sequence_logps({k: v.to(device) for k, v in batch.items()})

    def _forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        model = self.target
        adapter_off = model.disable_adapter() if self.disable_adapter else nullcontext()
        with in_eval_mode(model), adapter_off:  # no dropout: the reference is a fixed function
            self.forwards += 1
            return model_sequence_logps(model, batch)


def row_keys(batch: dict[str, Tensor]) -> list[bytes]:
    """One key per row: its attended token ids and its labels."""
    keys = []
    for ids, mask, labels in zip(batch["input_ids"], batch["attention_mask"], batch["labels"], strict=True):
        keep = mask.bool()
        keys.append(ids[keep].cpu().numpy().tobytes() + b"|" + labels[keep].cpu().numpy().tobytes())
    return keys


def build_reference(model: nn.Module) -> ModelReference:
    """The adapter-disabled policy for peft models, else a frozen copy of the model as it is now."""
    if isinstance(model, PeftModel):
        return ModelReference(model, disable_adapter=True)
    frozen = copy.deepcopy(model).eval().requires_grad_(False)
    return ModelReference(frozen, own=True)


def policy_as_reference(model: nn.Module) -> ModelReference:
    """The model as its own reference: what every objective sees before training starts."""
    return ModelReference(model)
