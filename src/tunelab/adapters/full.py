"""Full fine-tuning: every weight trains; the artifact is a whole HF model directory."""

from __future__ import annotations

from pathlib import Path

from torch import nn
from transformers import AutoModelForCausalLM, PreTrainedModel

from tunelab.adapters.base import Adapter


class FullFineTune(Adapter):
    """All parameters trainable. Subclasses that choose *which* weights train (freeze, LISA)
    or *how* they train (GaLore) keep this artifact: a complete HF model directory."""

    def apply(self, model: nn.Module) -> nn.Module:
        for param in model.parameters():
            param.requires_grad_(True)
        return model

    def save(self, model: nn.Module, out_dir: Path) -> Path:
        target = out_dir / "model"
        model.save_pretrained(target, safe_serialization=True)
        return target

    def load(self, base: PreTrainedModel, artifact: Path) -> nn.Module:
        # The artifact is complete: the base is not needed.
        return AutoModelForCausalLM.from_pretrained(artifact, dtype=base.dtype)

    def merge(self, model: nn.Module) -> PreTrainedModel:
        return model
