"""The adapter interface: how a method makes a base model trainable and saves what it trained."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback
from torch import nn
from transformers import PreTrainedModel

from tunelab.core.config import instantiate_clearly


class ExportError(RuntimeError):
    """The method's artifact cannot become a standalone model; the message says what to use."""


class Adapter:
    """Turns a loaded base model into the model to train, and saves the trained artifact.

    `lr` is the method's default learning rate; the top-level `lr` key reads it unless overridden.
    Config checks belong in `__init__`: it runs before the model loads, so a senseless
    combination stops the run with a `ConfigError` before any work is done.
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

    def load(self, base: PreTrainedModel, artifact: Path) -> nn.Module:
        """The trained model again, from a fresh base and the directory `save` wrote."""
        raise NotImplementedError

    def merge(self, model: nn.Module) -> PreTrainedModel:
        """A plain HF model computing what `model` (from `load`) computes; ExportError if impossible."""
        raise ExportError(f"adapter={self.name} has no merge into a standalone model")

    def merge_refusal(self) -> str | None:
        """Why `merge` raises ExportError, or None where it merges (read by the adapter table)."""
        return None if type(self).merge is not Adapter.merge else "no merge into a standalone model"

    def export(self, base: PreTrainedModel, artifact: Path) -> PreTrainedModel:
        """The standalone model `tunelab export` writes: `merge(load(base, artifact))`."""
        return self.merge(self.load(base, artifact))

    def param_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        """Optimizer parameter groups; methods that need special groups (GaLore) override this."""
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]

    def callbacks(self) -> list[Callback]:
        """Lightning callbacks the method needs while training (LISA's layer sampling, say)."""
        return []


def build_adapter(node: Any) -> Adapter:
    """Instantiate `cfg.adapter`; a constructor's ConfigError arrives as itself."""
    return instantiate_clearly(node)


def wrap_linears(model: nn.Module, names: list[str], wrap: Callable[[nn.Linear], nn.Module]) -> int:
    """Replace every `nn.Linear` whose attribute name is in `names` by `wrap(layer)`; how many."""
    wrapped = 0
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if child_name in names and isinstance(child, nn.Linear):
                setattr(parent, child_name, wrap(child))
                wrapped += 1
    return wrapped


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts, each shared tensor counted once, quantized ones unpacked."""
    seen: set[int] = set()
    trainable = total = 0
    for param in model.parameters():
        if id(param) in seen:
            continue
        seen.add(id(param))
        n = logical_numel(param)
        total += n
        trainable += n if param.requires_grad else 0
    return trainable, total


def logical_numel(param: torch.Tensor) -> int:
    """Elements of the weight the parameter stands for: a bitsandbytes 4-bit weight stores two
    per byte (its `numel()` is half), its quant_state keeps the original shape."""
    state = getattr(param, "quant_state", None)
    shape = getattr(state, "shape", None)
    return int(torch.Size(shape).numel()) if shape is not None else param.numel()


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The stack of transformer blocks: the longest ModuleList in the model.

    Works for Llama/Qwen/Mistral (`model.layers`), GPT-2 (`transformer.h`) and peft-wrapped
    models alike, without naming any architecture.
    """
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList)]
    if not lists:
        raise ValueError(f"{type(model).__name__} has no nn.ModuleList of transformer blocks")
    return max(lists, key=len)
