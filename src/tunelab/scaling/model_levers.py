"""Memory levers applied to the model itself: a bitsandbytes-quantized base selected on its own
(`quantization=nf4|nf4_dq|fp4|int8` with any peft adapter) and gradient checkpointing.

Mixed and reduced precision proper is Lightning's (`trainer.precision`, conf/precision/).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from peft import PeftModel
from torch import nn
from transformers import PreTrainedModel

from tunelab.adapters.base import Adapter, build_adapter
from tunelab.adapters.qlora import Quantization, QuantizedLoraAdapter, dequantize_base, quantize_base


class QuantizedBaseMixin:
    """Any peft adapter on a frozen bitsandbytes base: quantize before peft wraps it, and export
    by merging into the *dequantized* base the adapter was trained against (as QLoRA does)."""

    quantization: Quantization

    def prepare_base(self, model: nn.Module) -> nn.Module:
        return super().prepare_base(quantize_base(model, self.quantization))  # type: ignore[misc]

    def export(self, base: PreTrainedModel, artifact: Path) -> PreTrainedModel:
        float_base = dequantize_base(quantize_base(base, self.quantization))
        return self.merge(PeftModel.from_pretrained(float_base, artifact))  # type: ignore[attr-defined]


def with_quantized_base(adapter: Adapter, spec: dict[str, Any]) -> Adapter:
    """`adapter`, changed to train on a base quantized as `spec` says (bits, quant_type, ...).

    The adapter's class gains QuantizedBaseMixin, so LoRA+, DoRA, prompt methods ... keep their
    own behaviour. compat.quantized_base_needs_peft has already refused non-peft adapters.
    """
    if isinstance(adapter, QuantizedLoraAdapter):  # qlora: its own, identical, quantization
        return adapter
    q = Quantization(**spec)
    # QuantizedLoraAdapter's checks: known bits/type and a real forward+backward on this machine.
    QuantizedLoraAdapter._check(adapter, q)  # type: ignore[arg-type]
    cls = type(adapter)
    adapter.__class__ = type(f"QuantizedBase{cls.__name__}", (QuantizedBaseMixin, cls), {})
    adapter.quantization = q  # type: ignore[attr-defined]
    return adapter


def build_adapter_for(cfg: DictConfig) -> Adapter:
    """The run's adapter: `cfg.adapter`, on a quantized base when `cfg.quantization` is set."""
    adapter = build_adapter(cfg.adapter)
    spec = cfg.get("quantization")
    if spec is None:
        return adapter
    return with_quantized_base(adapter, OmegaConf.to_container(spec, resolve=True))  # type: ignore[arg-type]


def enable_gradient_checkpointing(model: nn.Module) -> None:
    """Recompute each block's activations in backward instead of storing them (HF's switch).

    Non-reentrant checkpointing: gradients reach adapters even when no input requires grad.
    """
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
