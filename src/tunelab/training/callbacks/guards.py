"""Stop a run that trains on garbage: non-finite losses or gradients, batches with nothing to learn."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback


class NonFiniteError(FloatingPointError):
    """A NaN or infinite loss or gradient; raised before the optimizer can write it into weights."""


class ZeroTokenError(RuntimeError):
    """Too many batches had no supervised token: the loss would silently report 0.0."""


class TrainingGuards(Callback):
    """Checks every step, before the optimizer steps, so no NaN ever reaches the weights.

    The last good checkpoint stays where it is (ModelCheckpoint never saves after the error).
    """

    def __init__(self, zero_token_batch_limit: int = 10) -> None:
        self.zero_token_batch_limit = zero_token_batch_limit
        self.zero_token_batches = 0

    def report(self) -> dict[str, Any]:
        """How many training batches had no supervised token."""
        return {"zero_token_batches": self.zero_token_batches}

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        supervised = trainer.callback_metrics.get("train/supervised_tokens")
        if supervised is not None and float(supervised) == 0.0:
            self.zero_token_batches += 1
            pl_module.log("train/zero_token_batches", float(self.zero_token_batches))
            if self.zero_token_batches > self.zero_token_batch_limit:
                raise ZeroTokenError(
                    f"{self.zero_token_batches} batches had no supervised token by step "
                    f"{trainer.global_step} (guards.zero_token_batch_limit="
                    f"{self.zero_token_batch_limit}): check completion_only masking and max_length"
                )

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        step = trainer.global_step
        loss = trainer.callback_metrics.get("train/loss")
        if loss is not None and not torch.isfinite(loss).all():
            raise NonFiniteError(f"non-finite loss {float(loss)} at step {step}; weights left unchanged")
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        # Tensor-parallel gradients are DTensors: check each rank's local shard.
        grads = [g.to_local() if hasattr(g, "to_local") else g for g in grads]
        if grads and not torch.isfinite(torch.stack(torch._foreach_norm(grads))).all():
            raise NonFiniteError(f"non-finite gradient at step {step}; weights left unchanged")
