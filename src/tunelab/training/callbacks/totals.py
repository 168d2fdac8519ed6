"""A run's totals travel in its checkpoints, so metrics.json describes the whole run after a resume.

Without this, a resumed run's `train_loss_initial`, `train_tokens`, tokens/s and final-loss window
cover only the part after the resume. The checkpoint also keeps the resolved config the run was
started with, so a resume can refuse a changed config even when config.yaml is gone.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from omegaconf import OmegaConf


class RunTotals(Callback):
    """Saves the per-step losses, objective metrics, token count, training seconds and the config
    in every checkpoint; on resume puts the first four back into the module before training."""

    def __init__(self, config_yaml: str = "") -> None:
        self.config_yaml = config_yaml
        self._restored: dict[str, Any] | None = None
        self._module: L.LightningModule | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._module = pl_module

    def state_dict(self) -> dict[str, Any]:
        m = self._module
        if m is None:
            return {"config_yaml": self.config_yaml}
        running = time.perf_counter() - m._fit_started if m._fit_started else 0.0
        return {
            "config_yaml": self.config_yaml,
            "step_losses": _floats(m.step_losses),
            "step_metrics": {k: _floats(v) for k, v in m.step_metrics.items()},
            "train_tokens": int(m.train_tokens),
            "fit_seconds": m.fit_seconds_before + running,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._restored = state_dict if "step_losses" in state_dict else None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        saved, self._restored = self._restored, None
        if saved is None or trainer.global_step == 0:
            return
        device = pl_module.device
        pl_module.step_losses = [torch.tensor(x, device=device) for x in saved["step_losses"]]
        pl_module.step_metrics = {
            k: [torch.tensor(x, device=device) for x in v] for k, v in saved["step_metrics"].items()
        }
        pl_module.train_tokens = torch.tensor(saved["train_tokens"], dtype=torch.long, device=device)
        pl_module.fit_seconds_before = float(saved["fit_seconds"])


def _floats(values: list[torch.Tensor]) -> list[float]:
    """Python floats of 0-d tensors, with one device sync (checkpoints load with weights_only)."""
    return torch.stack(values).float().cpu().tolist() if values else []


def previous_config(ckpt_path: Path) -> tuple[dict | None, str]:
    """The resolved config a checkpoint was written under, and where it was read: the run's
    config.yaml, or the copy inside the checkpoint when config.yaml is gone (None: neither)."""
    config_file = ckpt_path.parent.parent / "config.yaml"
    if config_file.is_file():
        return OmegaConf.to_container(OmegaConf.load(config_file), resolve=True), str(config_file)
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    text = stored_config(checkpoint)
    if text is None:
        return None, str(ckpt_path)
    return OmegaConf.to_container(OmegaConf.create(text), resolve=True), f"the config stored in {ckpt_path}"


def stored_config(checkpoint: dict[str, Any]) -> str | None:
    """The config YAML a checkpoint was written under (None for checkpoints without one)."""
    for key, state in checkpoint.get("callbacks", {}).items():
        if key.startswith("RunTotals") and isinstance(state, dict):
            return state.get("config_yaml") or None
    return None
