"""Bytes that training actually allocated, measured from the live tensors after the fit."""

from __future__ import annotations

import resource
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _tensors_in(value: Any) -> Iterable[torch.Tensor]:
    """Tensors held by an optimizer-state value: a tensor, or an object holding some (GaLore's
    projector keeps its projection matrix as an attribute)."""
    if isinstance(value, torch.Tensor):
        yield value
    elif hasattr(value, "__dict__"):
        yield from (v for v in vars(value).values() if isinstance(v, torch.Tensor))


def _quant_state_bytes(param: torch.Tensor) -> int:
    """Scales that bitsandbytes keeps beside a quantized weight (absmax, double-quant stats)."""
    total = 0
    state = getattr(param, "quant_state", None)
    if state is not None:
        total += sum(_nbytes(v) for v in state.as_dict(packed=True).values() if isinstance(v, torch.Tensor))
    scb = getattr(param, "SCB", None)
    if isinstance(scb, torch.Tensor):
        total += _nbytes(scb)
    return total


def _layer_scb(module: nn.Module) -> torch.Tensor | None:
    """The int8 row scales a bitsandbytes Linear8bitLt keeps on its matmul state after a forward."""
    return getattr(getattr(module, "state", None), "SCB", None)


def allocated_bytes(model: nn.Module, optimizers: Iterable[torch.optim.Optimizer]) -> dict[str, int]:
    """`weight_bytes` (every parameter, quantized ones as stored), `grad_bytes` (gradients held now),
    `optimizer_state_bytes` (every tensor in the optimizers' state); shared tensors counted once."""
    params = list({id(p): p for p in model.parameters()}.values())
    weight = sum(_nbytes(p) + _quant_state_bytes(p) for p in params)
    # LLM.int8 layers move their row scales from the weight to `layer.state.SCB` on first forward.
    weight += sum(_nbytes(s) for m in model.modules() if isinstance(s := _layer_scb(m), torch.Tensor))
    grad = sum(_nbytes(p.grad) for p in params if p.grad is not None)
    seen: set[int] = set()
    state = 0
    for optimizer in optimizers:
        for per_param in optimizer.state.values():
            for value in per_param.values():
                for t in _tensors_in(value):
                    if id(t) not in seen:
                        seen.add(id(t))
                        state += _nbytes(t)
    return {"weight_bytes": weight, "grad_bytes": grad, "optimizer_state_bytes": state}


def resident_bytes() -> int:
    """The process's resident set now (Linux /proc; 0 where it cannot be read)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return 0


def memory_baseline() -> int:
    """What the peak already holds before a run loads anything: bytes torch has allocated on the
    accelerator, or on CPU the process's resident set (interpreter, torch, transformers, Lightning)."""
    if torch.cuda.is_available():
        return torch.cuda.memory_allocated()
    return resident_bytes()


def peak_memory() -> dict[str, Any]:
    """Peak accelerator memory allocated by torch, or the process's peak RSS on CPU."""
    if torch.cuda.is_available():
        return {"peak_memory_bytes": torch.cuda.max_memory_allocated(), "peak_memory_kind": "cuda"}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    return {"peak_memory_bytes": rss, "peak_memory_kind": "cpu_max_rss"}
