"""LoftQ (Li et al., 2023, arXiv:2310.08659): QLoRA whose LoRA starts where the quantization error
is smallest, so that dequant(Q) + s·B·A ≈ W before any training step.

peft 0.21 ships this as `replace_lora_weights_loftq` (and `init_lora_weights="loftq"`), but both
compute on a hard-coded "cuda"/"xpu" device. This module does the same one-iteration step on the
quantized base's own device: the rank-r SVD of each layer's residual W - dequant(Q), through peft's
own `_low_rank_decomposition`. The base is QLoRA's (quantized once, deterministically), so the saved
LoRA reloads and merges exactly as `adapter=qlora` does.
"""

from __future__ import annotations

import torch
from peft.utils.loftq_utils import _low_rank_decomposition
from torch import nn

from tunelab.adapters.qlora import QuantizedLoraAdapter
from tunelab.core.config import ConfigError

PEFT_PREFIX = "base_model.model."


class LoftqAdapter(QuantizedLoraAdapter):
    """`adapter=qlora` with LoftQ's initialisation of every LoRA pair."""

    def __init__(self, name: str, peft_config, lr: float, quantization: dict) -> None:
        super().__init__(name, peft_config, lr, quantization)
        if self.quantization.bits != 4:
            raise ConfigError(
                f"adapter={name} with adapter.quantization.bits={self.quantization.bits}: LoftQ "
                "initialises LoRA against a 4-bit (NF4/FP4) base; use bits=4"
            )

    def apply(self, model: nn.Module) -> nn.Module:
        # The float weights are needed once, to measure each layer's quantization error.
        linears = (item for item in model.named_modules() if isinstance(item[1], nn.Linear))
        originals = {name: module.weight.detach().clone() for name, module in linears}
        peft_model = super().apply(model)
        initialised = 0
        for name, module in peft_model.named_modules():
            if hasattr(module, "lora_A") and "default" in module.lora_A:
                loftq_initialise(module, originals[name.removeprefix(PEFT_PREFIX)])
                initialised += 1
        if not initialised:
            raise ConfigError(f"adapter={self.name}: no LoRA layer on a quantized base to initialise")
        return peft_model


@torch.no_grad()
def loftq_initialise(layer: nn.Module, original: torch.Tensor, adapter: str = "default") -> None:
    """Set the layer's A, B so that scaling·B·A is the best rank-r fit of W - dequant(Q)."""
    import bitsandbytes.functional as F

    base = layer.get_base_layer()
    dequantized = F.dequantize_4bit(base.weight.data, base.weight.quant_state).float()
    residual = original.float().to(dequantized.device) - dequantized
    parts = _low_rank_decomposition(residual, reduced_rank=layer.r[adapter])
    # peft's B·A is multiplied by scaling (alpha/r) in the forward: divide it out of B.
    layer.lora_A[adapter].weight.data = parts["R"].contiguous()
    layer.lora_B[adapter].weight.data = (parts["L"] / layer.scaling[adapter]).contiguous()
