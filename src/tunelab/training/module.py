"""The one LightningModule: batch -> objective -> loss, for every adapter and objective."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from tunelab.objectives.base import Objective
from tunelab.objectives.reference import build_reference


class TuneLabModule(L.LightningModule):
    """Composes a (possibly adapted) model with an objective and an optimizer factory."""

    def __init__(
        self,
        model: nn.Module,
        objective: Objective,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        param_groups: Callable[[nn.Module], list[dict[str, Any]]] | None = None,
        initial_state: Callable[[torch.optim.Optimizer], int] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.objective = objective
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.param_groups = param_groups
        self.initial_state = initial_state  # the optimizer config's eager state (training.optimizer_state)
        # Built only when the objective declares it: reference-free objectives never run one.
        self.reference = build_reference(model) if objective.needs_reference else None
        # Checkpoints hold only trainable weights (see on_save_checkpoint), so loading is partial.
        self.strict_loading = False
        self.step_losses: list[Tensor] = []
        self.step_metrics: dict[str, list[Tensor]] = {}
        self.train_tokens = torch.zeros((), dtype=torch.long)
        self.fit_seconds = 0.0
        self.fit_seconds_before = 0.0  # training seconds before a resume (callbacks.totals)
        self._fit_started = 0.0
        self._stepped = False  # an optimizer step ran since the last batch started

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        self._stepped = True

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # The last step's gradients are freed before the next forward (HF's Trainer frees them after
        # each step); Lightning zeroes them only before the next backward. Held through the forward,
        # the peak of a step, they cost the trainable weights' size again (full SFT on SmolLM2:
        # 3,562 -> ~3,320 MiB peak RSS, docs/performance.md). Never inside a gradient-accumulation
        # window; the final step's gradients stay, for `allocated_bytes`.
        if self._stepped:
            for p in self.model.parameters():
                p.grad = None
            self._stepped = False

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        out = self.objective(self.model, batch, reference=self.reference)
        loss = out.loss.detach()
        self.log("train/loss", loss, prog_bar=True, sync_dist=True)  # DDP/FSDP: mean over ranks
        self.log("train/supervised_tokens", out.supervised_tokens.float())
        for name, value in out.metrics.items():
            self.log(f"train/{name}", value)
            self.step_metrics.setdefault(name, []).append(value.detach())
        # Kept as tensors: summing on device avoids a host sync every step.
        self.step_losses.append(loss)
        self.train_tokens = self.train_tokens.to(loss.device) + batch["attention_mask"].sum()
        return out.loss

    def configure_model(self) -> None:
        # Only ModelParallelStrategy (strategy=tensor_parallel) sets a device mesh; once per model.
        if self.device_mesh is not None and not getattr(self, "_parallelized", False):
            from tunelab.scaling.parallel import configure_model_parallel

            configure_model_parallel(self.model, self.device_mesh)
            self._parallelized = True

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        out = self.objective(self.model, batch, reference=self.reference)
        self.log("val/loss", out.loss, prog_bar=True, batch_size=batch["input_ids"].shape[0])

    def on_validation_model_zero_grad(self) -> None:
        # Lightning frees the gradients before validation by default; keep them, so that the
        # gradient bytes measured after fit (metrics.json) are the training step's with or
        # without a validation loop.
        pass

    def on_fit_start(self) -> None:
        # Objectives that ask for it get every training row's reference log-probs in one pass.
        if self.reference is not None and self.objective.precompute_reference:
            self.reference.precompute(self.trainer.datamodule.train_dataloader(), self.device)

    def on_train_start(self) -> None:
        self._fit_started = time.perf_counter()
        # After a resume's restore (restored states are not empty) and before the first forward.
        if self.initial_state is not None:
            for optimizer in self.trainer.optimizers:
                self.initial_state(optimizer)

    def on_train_end(self) -> None:
        self.fit_seconds = self.fit_seconds_before + time.perf_counter() - self._fit_started

    def configure_optimizers(self) -> dict:
        if self.param_groups is not None:
            groups = self.param_groups(self.model)
        else:
            groups = [{"params": [p for p in self.model.parameters() if p.requires_grad]}]
        if self.device_mesh is not None:  # tensor parallel: DTensor and plain weights in separate groups
            from tunelab.scaling.parallel import split_dtensor_groups

            groups = split_dtensor_groups(groups)
        optimizer = self.optimizer_factory(groups)
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(optimizer, num_training_steps=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Everything the optimizer updates, not just what is unfrozen now: LISA's blocks frozen in
        # this period were trained in earlier ones.
        updated = {id(p) for opt in self.trainer.optimizers for g in opt.param_groups for p in g["params"]}
        trainable = {
            f"model.{n}" for n, p in self.model.named_parameters() if p.requires_grad or id(p) in updated
        }
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in trainable}

    def loss_summary(self, window: int = 5) -> dict[str, float]:
        """Mean loss over the first and the last `window` steps (a quarter of a short fit)."""
        if not self.step_losses:
            return {}
        losses = torch.stack(self.step_losses).float().cpu()
        k = max(1, min(window, len(losses) // 4))
        return {
            "train_loss_initial": losses[:k].mean().item(),
            "train_loss_final": losses[-k:].mean().item(),
        }

    def metric_summary(self, window: int = 5) -> dict[str, float]:
        """`train/<metric>`: each objective metric's mean over the last `window` training steps."""
        summary = {}
        for name, values in self.step_metrics.items():
            recent = torch.stack(values[-window:]).float().cpu()
            summary[f"train/{name}"] = recent.mean().item()
        return summary

    def report(self) -> dict[str, Any]:
        """Losses, objective metrics and token throughput of the fit, for metrics.json."""
        tokens = int(self.train_tokens.item())
        summary = self.loss_summary() | self.metric_summary() | {"train_tokens": tokens}
        # checkpoint writes are timed apart: tokens/s covers the training steps alone
        return summary | step_time_metrics(tokens, self.fit_seconds, self.trainer.strategy.checkpoint_io)


def step_time_metrics(tokens: int, fit_seconds: float, checkpoint_io: Any) -> dict[str, float]:
    """Tokens/s over the training steps alone: checkpoint writes are timed and reported apart."""
    checkpoint_seconds = float(getattr(checkpoint_io, "seconds", 0.0))
    step_seconds = fit_seconds - checkpoint_seconds
    return {
        "train_tokens_per_sec": tokens / step_seconds if step_seconds > 0 else 0.0,
        "train_seconds": step_seconds,
        "checkpoint_seconds": checkpoint_seconds,
    }
