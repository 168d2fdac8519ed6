"""Full fine-tuning: every weight trains; the artifact is a whole HF model directory."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from tunelab.adapters.base import Adapter


class FullFineTune(Adapter):
    """All parameters trainable."""

    def apply(self, model: nn.Module) -> nn.Module:
        for param in model.parameters():
            param.requires_grad_(True)
        return model

    def save(self, model: nn.Module, out_dir: Path) -> Path:
        target = out_dir / "model"
        model.save_pretrained(target, safe_serialization=True)
        return target
