"""LISA (Pan et al., 2024, arXiv:2403.17919): layerwise importance sampling.

Embeddings, head and the other parameters outside the transformer blocks always train; of the
blocks, only `active_layers` (γ) randomly chosen ones train, re-drawn every `interval` (K)
optimizer steps by a Lightning callback. Every parameter sits in the optimizer from the start;
a frozen block gets no gradient (Lightning zeroes gradients to None), so AdamW leaves it as is.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from tunelab.adapters.base import decoder_layers
from tunelab.adapters.full import FullFineTune
from tunelab.core.config import ConfigError


class LisaSampler:
    """Draws which blocks train; seeded, so a run's sequence of draws is reproducible."""

    def __init__(self, active_layers: int, seed: int) -> None:
        self.active_layers = active_layers
        self.generator = torch.Generator().manual_seed(seed)
        self.history: list[list[int]] = []  # the blocks of each period, for tests and logs

    def resample(self, model: nn.Module) -> list[int]:
        """Freeze every block, then unfreeze `active_layers` of them drawn without replacement."""
        layers = decoder_layers(model)
        if self.active_layers > len(layers):
            raise ConfigError(
                f"adapter.active_layers={self.active_layers}: the model has {len(layers)} layers"
            )
        chosen = sorted(torch.randperm(len(layers), generator=self.generator)[: self.active_layers].tolist())
        self.activate(model, chosen)
        return chosen

    def activate(self, model: nn.Module, chosen: list[int]) -> None:
        """Freeze every block but the `chosen` ones; record the period's blocks."""
        layers = decoder_layers(model)
        layers.requires_grad_(False)
        for index in chosen:
            layers[index].requires_grad_(True)
        self.history.append(chosen)


class LisaCallback(Callback):
    """Re-draws the active blocks at the start of every `interval`-th optimizer step."""

    def __init__(self, sampler: LisaSampler, interval: int) -> None:
        self.sampler = sampler
        self.interval = interval
        self._restored: list[int] | None = None

    def state_dict(self) -> dict[str, Any]:
        # A resumed run must continue the same period with the same blocks and the same later draws.
        return {"generator": self.sampler.generator.get_state(), "active": self.sampler.history[-1]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.sampler.generator.set_state(state_dict["generator"])
        self._restored = list(state_dict["active"])

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._restored is not None:
            self.sampler.activate(pl_module.model, self._restored)
            self._restored = None

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ):
        step = trainer.global_step
        # Step 0 keeps the draw `apply` made (and reported in trainable_params).
        if step > 0 and step % self.interval == 0 and batch_idx % trainer.accumulate_grad_batches == 0:
            self.sampler.resample(pl_module.model)


class LisaAdapter(FullFineTune):
    """Full fine-tuning with only γ sampled blocks unfrozen at a time."""

    def __init__(self, name: str, lr: float, active_layers: int = 2, interval: int = 10, seed: int = 0):
        super().__init__(name, lr)
        if active_layers < 1 or interval < 1:
            raise ConfigError(
                f"adapter.active_layers={active_layers}, adapter.interval={interval}: both must be >= 1"
            )
        self.sampler = LisaSampler(active_layers, seed)
        self.interval = interval

    def apply(self, model: nn.Module) -> nn.Module:
        model.requires_grad_(True)
        # Draw the first period now, so the reported trainable count is the per-step one.
        self.sampler.resample(model)
        return model

    def param_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        # All weights: a block frozen now may be drawn later.
        return [{"params": list(model.parameters())}]

    def callbacks(self) -> list[Callback]:
        return [LisaCallback(self.sampler, self.interval)]
