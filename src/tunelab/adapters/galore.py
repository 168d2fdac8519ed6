"""GaLore (Zhao et al., 2024, arXiv:2403.03507): full-parameter training whose optimizer keeps
its state in a rank-r projection of each 2-D weight's gradient (galore-torch's optimizers).

The method is an optimizer: this adapter makes every weight trainable and hands galore-torch the
parameter groups it reads (`rank`, `update_proj_gap`, `scale`, `proj_type`) for the weights of
the transformer blocks' linear layers. `conf/adapter/galore.yaml` selects the optimizer
(`optimizer=galore_adamw`; `galore8bit` selects `galore_adamw8bit`); any other optimizer would
silently ignore the groups, so it is refused before training.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from galore_torch import GaLoreAdamW8bit
from galore_torch.galore_projector import GaLoreProjector
from hydra.utils import get_class
from torch import nn

from tunelab.adapters.base import decoder_layers
from tunelab.adapters.full import FullFineTune
from tunelab.core.config import ConfigError

# The optimizer state holds each weight's projector (its projection matrix and settings, plain
# data): allow it through the weights_only unpickler so a GaLore run resumes exactly.
torch.serialization.add_safe_globals([GaLoreProjector])


class GaLoreAdapter(FullFineTune):
    """Every weight trains; the blocks' linear weights through GaLore's projected optimizer state."""

    def __init__(
        self,
        name: str,
        lr: float,
        optimizer: str,
        rank: int,
        update_proj_gap: int = 50,
        scale: float = 0.25,
        proj_type: str = "std",
    ) -> None:
        super().__init__(name, lr)
        if not is_galore_optimizer(optimizer):
            raise ConfigError(
                f"adapter={name} needs a GaLore optimizer (optimizer=galore_adamw or "
                f"galore_adamw8bit), but optimizer.optimizer._target_={optimizer} would ignore "
                "its projection and train plain full fine-tuning"
            )
        if rank < 1:
            raise ConfigError(f"adapter.rank={rank}: GaLore's projection rank must be >= 1")
        reason = step_error(optimizer)
        if reason is not None:
            raise ConfigError(
                f"adapter={name} (optimizer.optimizer._target_={optimizer}) cannot step on this "
                f"machine: {reason}. its 8-bit update needs bitsandbytes kernels for this device; "
                "use adapter=galore instead"
            )
        self.galore = {
            "rank": rank,
            "update_proj_gap": update_proj_gap,
            "scale": scale,
            "proj_type": proj_type,
        }

    def param_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        projected = {id(m.weight) for m in decoder_layers(model).modules() if isinstance(m, nn.Linear)}
        params = [p for p in model.parameters() if p.requires_grad]
        plain = [p for p in params if id(p) not in projected]
        low_rank = [p for p in params if id(p) in projected]
        return [{"params": plain}, {"params": low_rank, **self.galore}]


def is_galore_optimizer(optimizer: str) -> bool:
    """Whether the class named `optimizer` is one of galore-torch's (or derives from one)."""
    import galore_torch

    galore_classes = (galore_torch.GaLoreAdamW, galore_torch.GaLoreAdamW8bit, galore_torch.GaLoreAdafactor)
    try:
        return issubclass(get_class(optimizer), galore_classes)
    except (ImportError, ValueError, TypeError):
        return False


def step_error(optimizer: str) -> str | None:
    """Why the optimizer class cannot take one GaLore step here (tried on a small weight), or None."""
    weight = nn.Parameter(torch.randn(64, 32, device="cuda" if torch.cuda.is_available() else "cpu"))
    try:
        opt = get_class(optimizer)(
            [{"params": [weight], "rank": 2, "update_proj_gap": 1, "scale": 1.0, "proj_type": "std"}], lr=1e-3
        )
        weight.grad = torch.ones_like(weight)
        opt.step()
    except Exception as err:  # any failure means: not on this machine
        return f"{type(err).__name__}: {err}"
    return None


@contextmanager
def _cuda_synchronize_is_noop() -> Iterator[None]:
    """Make `torch.cuda.synchronize` a no-op for the duration (there is no stream to wait for)."""
    original = torch.cuda.synchronize
    torch.cuda.synchronize = lambda device=None: None
    try:
        yield
    finally:
        torch.cuda.synchronize = original


class PortableGaLoreAdamW8bit(GaLoreAdamW8bit):
    """galore-torch's 8-bit AdamW, steppable without CUDA.

    Its `step` calls `torch.cuda.synchronize()` after every update, which raises on a CPU-only
    torch although bitsandbytes (>= 0.49) has CPU kernels for the block-wise 8-bit update itself.
    On CUDA this is exactly galore-torch's step.
    """

    @torch.no_grad()
    def step(self, closure=None):
        if torch.cuda.is_available():
            return super().step(closure)
        with _cuda_synchronize_is_noop():
            return super().step(closure)
