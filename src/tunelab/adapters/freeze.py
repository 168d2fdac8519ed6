"""Freeze tuning: full fine-tuning of a chosen part of the model, the rest frozen.

Trains the top `train_layers` transformer blocks plus every parameter whose name matches one of
the `train_modules` regular expressions (e.g. `["norm", "mlp"]`). The artifact is a whole HF
model directory, like full fine-tuning's.
"""

from __future__ import annotations

import re

from torch import nn

from tunelab.adapters.base import decoder_layers
from tunelab.adapters.full import FullFineTune
from tunelab.core.config import ConfigError


class FreezeFineTune(FullFineTune):
    """Only the top-N blocks and the named modules train."""

    def __init__(self, name: str, lr: float, train_layers: int = 1, train_modules: list[str] | None = None):
        super().__init__(name, lr)
        patterns = list(train_modules or [])
        if train_layers < 0 or (train_layers == 0 and not patterns):
            raise ConfigError(
                f"adapter.train_layers={train_layers}, adapter.train_modules={patterns}: "
                "nothing would train; give a positive train_layers or some module patterns"
            )
        self.train_layers = train_layers
        self.patterns = [re.compile(p) for p in patterns]

    def apply(self, model: nn.Module) -> nn.Module:
        model.requires_grad_(False)
        layers = decoder_layers(model)
        if self.train_layers > len(layers):
            raise ConfigError(f"adapter.train_layers={self.train_layers}: the model has {len(layers)} layers")
        for layer in list(layers)[len(layers) - self.train_layers :]:
            layer.requires_grad_(True)
        for name, param in model.named_parameters():
            if any(p.search(name) for p in self.patterns):
                param.requires_grad_(True)
        return model
