"""The adapter interface: how a method makes a base model trainable and saves what it trained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback
from torch import nn


class Adapter:
    """Turns a loaded base model into the model to train, and saves the trained artifact.

    `lr` is the method's default learning rate; the top-level `lr` key reads it unless overridden.
    """

    def __init__(self, name: str, lr: float) -> None:
        self.name = name
        self.lr = lr

    def apply(self, model: nn.Module) -> nn.Module:
        """Return the model to train, with exactly the trainable parameters set."""
        raise NotImplementedError

    def save(self, model: nn.Module, out_dir: Path) -> Path:
        """Write the trained artifact under `out_dir`; return its directory."""
        raise NotImplementedError

    def param_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        """Optimizer parameter groups; methods that need special groups (GaLore) override this."""
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]

    def callbacks(self) -> list[Callback]:
        """Lightning callbacks the method needs while training (LISA's layer sampling, say)."""
        return []


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts, each shared tensor counted once."""
    seen: set[int] = set()
    trainable = total = 0
    for param in model.parameters():
        if id(param) in seen:
            continue
        seen.add(id(param))
        total += param.numel()
        trainable += param.numel() if param.requires_grad else 0
    return trainable, total
