"""The memory estimator against bytes really allocated by the tiny model, and 7B landmarks."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

import tunelab  # noqa: F401  (registers the config resolvers)
from tests.conftest import compose_with
from tunelab.models.load import load_pretrained
from tunelab.scaling.measure import allocated_bytes
from tunelab.scaling.memory import (
    activation_bytes,
    estimate,
    estimate_beside_peak,
    model_config,
    quantized_bytes,
)
from tunelab.scaling.model_levers import build_adapter_for


def measured(cfg) -> dict[str, int]:
    """Train the real tiny model one step as a run would; the bytes its tensors hold afterwards."""
    torch.manual_seed(0)
    model = load_pretrained(cfg.model.name_or_path, cfg.model.dtype).model
    adapter = build_adapter_for(cfg)
    model = adapter.apply(model)
    if cfg.trainer.precision == "bf16-true":  # what Lightning's true-precision plugin does
        model = model.to(torch.bfloat16)
    optimizer = instantiate(cfg.optimizer.optimizer)(adapter.param_groups(model))
    ids = torch.randint(3, 100, (2, 16))
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    return allocated_bytes(model, [optimizer])


CASES = [
    ["adapter=lora"],
    ["adapter=full"],
    ["adapter=full", "optimizer=adamw_8bit"],
    ["adapter=full", "optimizer=paged_adamw_32bit"],
    ["adapter=full", "optimizer=sgd"],
    ["adapter=full", "optimizer=adafactor"],
    ["adapter=lora", "precision=bf16_true"],
    ["adapter=qlora"],
    ["adapter=qlora8bit"],
    ["adapter=dora", "quantization=nf4"],
    ["adapter=lora", "quantization=fp4", "optimizer=paged_adamw_8bit"],
    ["adapter=galore"],  # projected moments + projector, declared by optimizer.state_memory
    ["adapter=galore8bit"],
]


@pytest.mark.parametrize("overrides", CASES, ids=[" ".join(c) for c in CASES])
def test_estimate_matches_allocated_bytes(overrides):
    cfg = compose_with(overrides)
    est, real = estimate(cfg), measured(cfg)
    # Within 1%: bitsandbytes also keeps a few hundred bytes of packed metadata per quantized layer.
    assert est.weights == pytest.approx(real["weight_bytes"], rel=0.01)
    if "adapter=galore8bit" in overrides:
        # Its step releases the gradients it consumed; they all exist at the end of backward.
        assert est.gradients >= real["grad_bytes"]
    else:
        assert est.gradients == real["grad_bytes"]
    assert est.optimizer_state == pytest.approx(real["optimizer_state_bytes"], rel=0.01, abs=64)


def test_quantized_bytes_by_hand():
    shape = torch.Size([128, 64])  # 8192 weights = 128 blocks of 64
    nf4 = {"bits": 4, "double_quant": False}
    assert quantized_bytes(shape, nf4) == 8192 // 2 + 128 * 4 + 16 * 4
    assert quantized_bytes(shape, {"bits": 8}) == 8192 + 128 * 4
    dq = quantized_bytes(shape, {"bits": 4, "double_quant": True})
    assert dq == 8192 // 2 + 128 + 4 * 1 + 4 * 256 + 4 + 16 * 4


def test_activations_by_hand_and_checkpointing():
    config = model_config("meta-llama/Llama-2-7b-hf")
    # One token, one layer's worth by hand: (6h + 2kv + 4i) bf16 elements, 32 layers, one fp32
    # log-softmax over the vocabulary; trainable norms add 2h per block and 2h + h after the last.
    h, i, v = 4096, 11008, 32000
    expected = 32 * (6 * h + 2 * h + 4 * i) * 2 + v * 4
    assert activation_bytes(config, 1, 1, 2, False, False) == expected
    assert (
        activation_bytes(config, 1, 1, 2, False, False, norms_train=True)
        == expected + 32 * 2 * h * 2 + 3 * h * 2
    )
    full = activation_bytes(config, 4, 512, 2, False, False)
    ckpt = activation_bytes(config, 4, 512, 2, True, False)
    assert ckpt < full / 4


def saved_for_backward(cfg) -> int:
    """Bytes autograd saves in one forward of the objective, counted with saved-tensor hooks
    (each storage once, parameters left out): the activations, measured."""
    torch.manual_seed(0)
    model = build_adapter_for(cfg).apply(load_pretrained(cfg.model.name_or_path, cfg.model.dtype).model)
    model.train()
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if t.numel() and storage.data_ptr() not in weights:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    ids = torch.randint(10, 100, (cfg.data.batch_size, cfg.data.max_length))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        instantiate(cfg.objective)(model, batch).loss.backward()
    return sum(saved.values())


@pytest.mark.parametrize("adapter", ["lora", "full"])
def test_activation_estimate_matches_saved_tensors(adapter):
    """LoRA keeps the norms frozen (6h per block), full fine-tuning trains them (8h): both within 2 %."""
    cfg = compose_with([f"adapter={adapter}", "data.batch_size=2", "data.max_length=32"])
    assert estimate(cfg).activations == pytest.approx(saved_for_backward(cfg), rel=0.02)


def test_metrics_put_the_estimate_beside_the_peak():
    cfg = compose_with(["adapter=lora"])
    est = estimate(cfg)
    fields = estimate_beside_peak(cfg, baseline=1000, peak=4 * 1024**2)
    total = 1000 + est.weights + est.gradients + est.optimizer_state + est.activations + est.loss_buffers
    v = 102  # the tiny vocabulary: gradients of the log-softmax and of the logits, fp32, per token
    assert est.loss_buffers == 2 * cfg.data.batch_size * cfg.data.max_length * v * 4
    assert fields["memory_estimate_bytes"] == total
    assert fields["memory_estimate_parts"]["baseline"] == 1000
    assert fields["peak_over_estimate"] == 4 * 1024**2 / total
    cfg.model.name_or_path = "/no/such/model/dir"  # the estimate fails; the run's record must not
    assert "no config.json" in estimate_beside_peak(cfg, 0, 1)["memory_estimate_error"]
