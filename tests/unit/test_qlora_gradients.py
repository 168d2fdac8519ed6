"""QLoRA's frozen quantized base must pass gradients to its input after an evaluation pass.

bitsandbytes repacks a 4-bit weight for CPU inference on an eval-mode forward; after that the
backward through the layer used to give the input no gradient. The reference here is independent of
bitsandbytes' matmul: a plain float nn.Linear holding the dequantized weight.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tunelab.adapters.qlora import Quantization, dequantized_linear

CASES = {
    "nf4_double_quant": (Quantization(bits=4, quant_type="nf4", double_quant=True), 0.0),
    "fp4": (Quantization(bits=4, quant_type="fp4", double_quant=False), 0.0),
    # LLM.int8 casts the input to fp16 before its matmul: agreement to fp16 precision.
    "int8": (Quantization(bits=8), 1e-3),
}


@pytest.mark.parametrize("name", list(CASES))
def test_input_gradient_after_an_eval_pass_equals_the_dequantized_float_layer(name: str) -> None:
    quantization, tolerance = CASES[name]
    torch.manual_seed(0)
    layer = quantization.quantized_linear(nn.Linear(64, 32))
    shape_before = tuple(layer.weight.shape)
    layer.eval()
    with torch.no_grad():
        layer(torch.randn(3, 64))
    layer.train()
    float_layer = dequantized_linear(layer)

    x = torch.randn(3, 64, requires_grad=True)
    upstream = torch.randn(3, 32)
    (layer(x) * upstream).sum().backward()
    x_ref = x.detach().clone().requires_grad_(True)
    (float_layer(x_ref) * upstream).sum().backward()

    assert x.grad is not None, "the quantized layer gave its input no gradient"
    assert torch.allclose(x.grad, x_ref.grad, atol=tolerance, rtol=0), (x.grad - x_ref.grad).abs().max()
    assert tuple(layer.weight.shape) == shape_before, "the evaluation pass repacked the weight"


def test_double_quantization_survives_an_eval_pass() -> None:
    layer = Quantization(bits=4, quant_type="nf4", double_quant=True).quantized_linear(nn.Linear(64, 64))
    layer.eval()
    with torch.no_grad():
        layer(torch.randn(2, 64))
    assert layer.weight.quant_state.nested
