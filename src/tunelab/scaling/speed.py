"""Opt-in speed switches applied to the adapted model: torch.compile and Liger kernels.

Both leave the model's parameters, state-dict keys and outputs as they are (compile is applied in
place with `nn.Module.compile`, not by wrapping), so checkpoints, adapters and objectives see the
same model. Gradient checkpointing belongs to the precision/strategy settings, not here.
"""

from __future__ import annotations

import importlib.util

from torch import nn

from tunelab.core.config import ConfigError


def check_speed(compile: bool = False, liger: bool = False) -> None:
    """Raise ConfigError before the model loads when a requested switch cannot work here."""
    if liger and importlib.util.find_spec("liger_kernel") is None:
        raise ConfigError(
            "speed.liger=true needs the liger-kernel package (pip install liger-kernel; Triton, CUDA only)"
        )


def apply_speed(model: nn.Module, compile: bool = False, liger: bool = False) -> nn.Module:
    """Patch `model` in place with Liger's kernels and/or compile its forward; returns it."""
    check_speed(compile, liger)
    if liger:
        from liger_kernel.transformers import _apply_liger_kernel_to_instance

        # Patches RMSNorm, RoPE and SwiGLU of the underlying transformers model. Its fused
        # linear-cross-entropy only engages when labels are passed; tunelab computes log-probs
        # from logits itself, so logits stay available to every objective.
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        _apply_liger_kernel_to_instance(model=base)
    if compile:
        model.compile()  # in place: parameter names (and so checkpoints) keep their keys
    return model
