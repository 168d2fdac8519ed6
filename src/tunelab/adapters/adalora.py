"""AdaLoRA (Zhang et al., 2023, arXiv:2303.10512): SVD-shaped LoRA whose rank budget is moved
between layers during training by an importance score.

peft implements the method but leaves two things to the training script: calling
`update_and_allocate(step)` after every optimizer step (while the gradients are still there), and
the orthogonality regulariser, which peft only adds to a `labels=` loss (tunelab's objectives
compute their own loss from the logits). Both live in `AdaLoraSchedule`, the adapter's callback,
so the training loop knows nothing of AdaLoRA. Its importance statistics are saved in checkpoints,
so a resumed run allocates exactly as the uninterrupted one.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from peft import AdaLoraConfig
from torch import nn

from tunelab.adapters.peft_adapter import PeftAdapter
from tunelab.core.config import ConfigError


def adalora_model(module: nn.Module) -> nn.Module:
    """The peft AdaLoraModel (holder of `rankallocator`) inside `module`."""
    for m in module.modules():
        if hasattr(m, "rankallocator") and hasattr(m, "update_and_allocate"):
            return m
    raise TypeError(f"{type(module).__name__} holds no peft AdaLoraModel")


def orthogonality_penalty(model: nn.Module) -> torch.Tensor:
    """Mean over lora_A / lora_B of ||P Pᵀ - I||_F (A) or ||Pᵀ P - I||_F (B): the paper's R(P, Q)."""
    terms = []
    for name, p in model.named_parameters():
        if p.requires_grad and ("lora_A" in name or "lora_B" in name):
            cov = p @ p.T if "lora_A" in name else p.T @ p
            terms.append(torch.linalg.norm(cov - torch.eye(cov.shape[0], device=cov.device), ord="fro"))
    return torch.stack(terms).mean()


class AdaLoraSchedule(Callback):
    """Per optimizer step: the orthogonality term's gradient, then peft's budget allocation."""

    def __init__(self, orth_reg_weight: float) -> None:
        self.orth_reg_weight = orth_reg_weight
        self._allocated_at = -1

    def on_after_backward(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # grad(L + w·R) = grad L + w·grad R: the regulariser's gradient is added to the loss's.
        if self.orth_reg_weight > 0:
            scale = self.orth_reg_weight / trainer.accumulate_grad_batches
            (scale * orthogonality_penalty(pl_module.model)).backward()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        # After the optimizer step and before the next zero_grad: peft's documented call site.
        step = trainer.global_step
        if step != self._allocated_at:
            adalora_model(pl_module.model).update_and_allocate(step)
            self._allocated_at = step

    def state_dict(self) -> dict[str, Any]:
        return {"allocated_at": self._allocated_at, "allocator": self._allocator_state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._allocated_at = state_dict["allocated_at"]
        self._pending = state_dict["allocator"]

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._model = adalora_model(pl_module.model)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pending = getattr(self, "_pending", None)
        if pending is not None:  # a resumed run: the importance averages and the pattern so far
            allocator = self._model.rankallocator
            allocator.ipt, allocator.exp_avg_ipt, allocator.exp_avg_unc = (
                pending["ipt"],
                pending["exp_avg_ipt"],
                pending["exp_avg_unc"],
            )
            config = self._model.peft_config[self._model.trainable_adapter_name]
            config.rank_pattern = pending["rank_pattern"]
            self._pending = None

    @property
    def _allocator_state(self) -> dict[str, Any]:
        allocator = self._model.rankallocator
        config = self._model.peft_config[self._model.trainable_adapter_name]
        return {
            "ipt": allocator.ipt,
            "exp_avg_ipt": allocator.exp_avg_ipt,
            "exp_avg_unc": allocator.exp_avg_unc,
            "rank_pattern": config.rank_pattern,
        }


class AdaLoraAdapter(PeftAdapter):
    """peft's AdaLoRA with its schedule as fractions of the run (`tinit`, `tfinal` follow
    `trainer.max_steps`), and its per-step hook and regulariser as a callback."""

    def __init__(
        self,
        name: str,
        peft_config: AdaLoraConfig,
        lr: float,
        warmup_fraction: float = 0.1,
        final_fraction: float = 0.2,
    ) -> None:
        super().__init__(name, peft_config, lr)
        total = peft_config.total_step
        peft_config.tinit = round(warmup_fraction * total)
        peft_config.tfinal = round(final_fraction * total)
        if peft_config.tinit >= total - peft_config.tfinal:
            raise ConfigError(
                f"adapter.warmup_fraction={warmup_fraction} and adapter.final_fraction={final_fraction} "
                f"of adapter.peft_config.total_step={total} leave AdaLoRA no steps to reallocate ranks; "
                "lower the fractions or train longer"
            )
        # peft's own regulariser only sees `labels=` losses; the callback adds it instead.
        self.orth_reg_weight = peft_config.orth_reg_weight

    def callbacks(self) -> list[Callback]:
        return [AdaLoraSchedule(self.orth_reg_weight)]
