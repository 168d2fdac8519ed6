"""Stop a run that trains on garbage: non-finite losses or gradients, exploding weights, batches with
nothing to learn."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback


class NonFiniteError(FloatingPointError):
    """A NaN or infinite loss or gradient; raised before the optimizer can write it into weights."""


class ZeroTokenError(RuntimeError):
    """Too many batches had no supervised token: the loss would silently report 0.0."""


def float64_norm(w: torch.Tensor, chunk: int = 1 << 20) -> float:
    """The L2 norm of `w` in float64, `chunk` elements at a time: a float64 copy of a whole
    embedding (49k x 576 on SmolLM2: 216 MiB) would add to the run's peak memory."""
    norms = [float(torch.linalg.vector_norm(c.double())) for c in w.reshape(-1).split(chunk)]
    return math.hypot(*norms)  # no overflow of the squares


class TrainingGuards(Callback):
    """Checks every step, before the optimizer steps, so no NaN ever reaches the weights.

    The last good checkpoint stays where it is (ModelCheckpoint never saves after the error).
    """

    def __init__(self, zero_token_batch_limit: int = 10, max_weight_norm: float | None = 1e6) -> None:
        self.zero_token_batch_limit = zero_token_batch_limit
        self.max_weight_norm = max_weight_norm
        self.zero_token_batches = 0

    def report(self) -> dict[str, Any]:
        """How many training batches had no supervised token."""
        return {"zero_token_batches": self.zero_token_batches}

    def check_weights(self, trainer: L.Trainer, pl_module: L.LightningModule, when: str) -> None:
        """NonFiniteError when a trained weight is non-finite or its norm exceeds `max_weight_norm`.

        Run before every checkpoint and before the trained model is saved, never per step: a step
        can write finite but exploding weights (1e37) that the loss and gradient checks miss, and
        they must not replace the last good checkpoint. Norms in float64: a float16 weight's norm
        can overflow where the weight itself is fine.
        """
        updated = {id(p) for opt in trainer.optimizers for g in opt.param_groups for p in g["params"]}
        for name, p in pl_module.named_parameters():
            if id(p) not in updated:
                continue
            w = p.to_local() if hasattr(p, "to_local") else p
            norm = float64_norm(w.detach())
            if not math.isfinite(norm) or (self.max_weight_norm is not None and norm > self.max_weight_norm):
                raise NonFiniteError(
                    f"weight {name} has norm {norm:.3g} {when} at step {trainer.global_step} "
                    f"(guards.max_weight_norm={self.max_weight_norm}): training diverged; "
                    "the last good checkpoint is kept"
                )

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        self.check_weights(trainer, pl_module, "before a checkpoint")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check_weights(trainer, pl_module, "after training")

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
