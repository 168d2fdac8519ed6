"""QLoRA (Dettmers et al., 2023, arXiv:2305.14314): LoRA on a frozen base whose linear layers are
stored in 4-bit NormalFloat (with double quantization of the scales) or, in the 8-bit variant,
LLM.int8 (Dettmers et al., 2022, arXiv:2208.07339), all through bitsandbytes.

The adapter quantizes the already loaded base in place (model building stays untouched), then
peft wraps the bitsandbytes layers with its own quantized-LoRA layers. Export merges the LoRA
update into the *dequantized* base, so the standalone model computes what the trained model did.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from peft import PeftConfig, PeftModel
from torch import nn
from transformers import PreTrainedModel

from tunelab.adapters.peft_adapter import PeftAdapter
from tunelab.core.config import ConfigError

QUANT_TYPES = ("nf4", "fp4")


@dataclass
class Quantization:
    """How the base's linear layers are stored: `bits` 4 (`quant_type`, `double_quant`) or 8."""

    bits: int = 4
    quant_type: str = "nf4"
    double_quant: bool = True
    compute_dtype: str = "float32"

    def quantized_linear(self, linear: nn.Linear) -> nn.Module:
        """A bitsandbytes copy of `linear`; bitsandbytes quantizes the weight on `.to(device)`."""
        import bitsandbytes as bnb

        has_bias = linear.bias is not None
        if self.bits == 4:
            layer = bnb.nn.Linear4bit(
                linear.in_features,
                linear.out_features,
                bias=has_bias,
                compute_dtype=getattr(torch, self.compute_dtype),
                compress_statistics=self.double_quant,
                quant_type=self.quant_type,
            )
            keep_training_layout(layer)
        else:
            layer = bnb.nn.Linear8bitLt(
                linear.in_features, linear.out_features, bias=has_bias, has_fp16_weights=False
            )
        layer.load_state_dict(linear.state_dict())
        layer.requires_grad_(False)
        return layer.to(linear.weight.device)


def keep_training_layout(layer: nn.Module) -> None:
    """Stop bitsandbytes from repacking a 4-bit weight into its CPU inference layout.

    bitsandbytes >= 0.49 repacks a Linear4bit's weight on the first CPU forward in eval mode without
    grad (on CPUs with AVX512-BF16): the layout changes to `(out, in/2)`, double quantization is
    undone, and later training forwards go through `gemv_4bit`, which has no autograd kernel, so the
    input gets no gradient. Every evaluation runs in eval mode, so without this a QLoRA run that
    evaluates first would train with the gradient path through each frozen base layer cut.
    """
    layer.support_avx512bf16_for_cpu = False


def capability_error(q: Quantization, device: torch.device) -> str | None:
    """Why bitsandbytes cannot train through `q`-bit layers on `device`, or None if it can.

    Tried for real on a small layer: an eval-mode forward, then a forward and a backward to the
    input, as a run that evaluates before training and then trains LoRA needs.
    """
    try:
        layer = q.quantized_linear(nn.Linear(64, 64).to(device))
        layer.eval()  # an evaluation pass first, as a run that scores its baseline does
        with torch.no_grad():
            layer(torch.randn(2, 64, device=device))
        layer.train()
        x = torch.randn(2, 64, device=device, requires_grad=True)
        layer(x).sum().backward()
        if x.grad is None or not torch.isfinite(x.grad).all():
            return "the backward pass gave no finite gradient"
    except Exception as err:  # any failure means: not on this machine
        return f"{type(err).__name__}: {err}"
    return None


def quantize_base(model: PreTrainedModel, q: Quantization) -> PreTrainedModel:
    """Replace every plain nn.Linear except the output head with its quantized copy, frozen."""
    head = model.get_output_embeddings()
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            # type() rather than isinstance(): bitsandbytes layers subclass nn.Linear.
            if type(child) is nn.Linear and child is not head:
                setattr(parent, child_name, q.quantized_linear(child))
    model.requires_grad_(False)
    return model


def dequantized_linear(layer: nn.Module) -> nn.Linear:
    """The float nn.Linear a bitsandbytes layer computes with (its weight dequantized)."""
    import bitsandbytes as bnb
    import bitsandbytes.functional as F

    weight = layer.weight
    if isinstance(layer, bnb.nn.Linear4bit):
        dense = F.dequantize_4bit(weight.data, weight.quant_state).to(layer.compute_dtype or torch.float32)
    else:
        # After its first forward a Linear8bitLt keeps the row scales on its matmul state instead.
        scales = weight.SCB if weight.SCB is not None else layer.state.SCB
        dense = F.int8_vectorwise_dequant(weight.data, scales)
    plain = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    plain.weight.data = dense.float().reshape(layer.out_features, layer.in_features)
    if layer.bias is not None:
        plain.bias.data = layer.bias.data.float()
    return plain.to(dense.device)


def dequantize_base(model: nn.Module) -> nn.Module:
    """Replace every bitsandbytes linear layer with its dequantized float copy."""
    import bitsandbytes as bnb

    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)):
                setattr(parent, child_name, dequantized_linear(child))
    return model


class QuantizedLoraAdapter(PeftAdapter):
    """LoRA (peft) on a bitsandbytes-quantized frozen base."""

    def __init__(self, name: str, peft_config: PeftConfig, lr: float, quantization: dict) -> None:
        super().__init__(name, peft_config, lr)
        self.quantization = Quantization(**quantization)
        self._check(self.quantization)

    def _check(self, q: Quantization) -> None:
        """Stop before the model loads if the quantization is unknown or this machine cannot run it."""
        if q.bits not in (4, 8):
            raise ConfigError(f"adapter.quantization.bits={q.bits}: bitsandbytes quantizes to 4 or 8 bits")
        if q.bits == 4 and q.quant_type not in QUANT_TYPES:
            raise ConfigError(
                f"adapter.quantization.quant_type={q.quant_type!r}: expected one of {QUANT_TYPES}"
            )
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        reason = capability_error(q, device)
        if reason is not None:
            import bitsandbytes as bnb

            raise ConfigError(
                f"adapter={self.name} (adapter.quantization.bits={q.bits}): bitsandbytes "
                f"{bnb.__version__} cannot train through {q.bits}-bit layers on this machine "
                f"({device.type}): {reason}"
            )

    def prepare_base(self, model: nn.Module) -> nn.Module:
        return quantize_base(model, self.quantization)

    def export(self, base: PreTrainedModel, artifact: Path) -> PreTrainedModel:
        # Quantize exactly as in training, then dequantize: the float base the trained model saw.
        float_base = dequantize_base(self.prepare_base(base))
        return PeftModel.from_pretrained(float_base, artifact).merge_and_unload()
