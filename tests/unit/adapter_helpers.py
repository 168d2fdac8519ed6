"""What the adapter tests share: the tiny base with an adapter applied, as a run builds it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from torch import nn

from tunelab.adapters.base import Adapter, build_adapter, count_parameters
from tunelab.training.module import TuneLabModule


@dataclass
class Adapted:
    """The pieces a test trains: data (tokenizer attached), objective, adapter and adapted model."""

    data: Any
    objective: Any
    adapter: Adapter
    model: nn.Module


def adapted_tiny(cfg: Any, seed: int = 0) -> Adapted:
    """Seed, build data and objective, load the model, attach the tokenizer, apply the adapter."""
    L.seed_everything(seed)
    data, objective = instantiate(cfg.data), instantiate(cfg.objective)
    adapter = build_adapter(cfg.adapter)
    loaded = instantiate(cfg.model)
    data.attach_tokenizer(loaded.tokenizer)
    return Adapted(data, objective, adapter, adapter.apply(loaded.model))


@dataclass
class Fit:
    """An adapter after a short fit: the frozen weights before, one batch's loss before and after."""

    cfg: Any
    adapter: Adapter
    model: nn.Module
    frozen_before: dict[str, torch.Tensor]
    batch: dict[str, torch.Tensor]
    loss_before: float
    loss_after: float
    trainable: int
    optimizer: torch.optim.Optimizer
    callbacks: list


def batch_loss(objective: Any, model: nn.Module, batch: dict) -> float:
    """The objective's loss on `batch`, in eval mode, without gradients."""
    model.eval()
    with torch.no_grad():
        return objective(model, batch).loss.item()


def fit_adapter(cfg: Any, steps: int, extra_callbacks: tuple = ()) -> Fit:
    """`steps` optimizer steps of the composed run config in-process, the adapter's callbacks on."""
    built = adapted_tiny(cfg)
    data, objective, adapter, model = built.data, built.objective, built.adapter, built.model
    trainable, _ = count_parameters(model)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    batch = next(iter(data.train_dataloader()))
    loss_before = batch_loss(objective, model, batch)
    module = TuneLabModule(
        model, objective, optimizer=instantiate(cfg.optimizer.optimizer), param_groups=adapter.param_groups
    )
    callbacks = [*adapter.callbacks(), *extra_callbacks]
    trainer = L.Trainer(
        max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks,
    )  # fmt: skip
    trainer.fit(module, datamodule=data)
    return Fit(
        cfg, adapter, model, frozen, batch, loss_before, batch_loss(objective, model, batch),
        trainable, trainer.optimizers[0], callbacks,
    )  # fmt: skip
