"""What the adapter tests share: the tiny base with an adapter applied, as a run builds it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightning as L
from hydra.utils import instantiate
from torch import nn

from tunelab.adapters.base import Adapter, build_adapter


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
