"""Every method peft implements (LoRA and its variants, IA3, prompt methods) through one class.

The method itself is the `peft_config` node of the adapter yaml, instantiated by Hydra into
peft's own config class, so tunelab re-implements none of it.
"""

from __future__ import annotations

from pathlib import Path

from peft import PeftConfig, PeftModel, get_peft_model
from torch import nn

from tunelab.adapters.base import Adapter


class PeftAdapter(Adapter):
    """Wrap the base model with `peft.get_peft_model(model, peft_config)`."""

    def __init__(self, name: str, peft_config: PeftConfig, lr: float) -> None:
        super().__init__(name, lr)
        self.peft_config = peft_config

    def apply(self, model: nn.Module) -> nn.Module:
        return get_peft_model(model, self.peft_config)

    def save(self, model: nn.Module, out_dir: Path) -> Path:
        if not isinstance(model, PeftModel):
            raise TypeError(f"adapter {self.name!r} expected a PeftModel, got {type(model).__name__}")
        target = out_dir / "adapter"
        model.save_pretrained(target, safe_serialization=True)
        return target
