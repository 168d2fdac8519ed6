"""The memory estimator against bytes really allocated by the tiny model, and 7B landmarks."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

import tunelab  # noqa: F401  (registers the config resolvers)
from tests.conftest import compose_with
from tunelab.models.load import load_pretrained
from tunelab.scaling.measure import allocated_bytes
from tunelab.scaling.memory import activation_bytes, estimate, model_config, quantized_bytes
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
    # One token, one layer's worth by hand: (6h + 2kv + 4i) bf16 elements, 32 layers, fp32 logits x2.
    h, i, v = 4096, 11008, 32000
    expected = 32 * (6 * h + 2 * h + 4 * i) * 2 + v * 4 * 2
    assert activation_bytes(config, 1, 1, 2, False, False) == expected
    full = activation_bytes(config, 4, 512, 2, False, False)
    ckpt = activation_bytes(config, 4, 512, 2, True, False)
    assert ckpt < full / 4
    assert activation_bytes(config, 8, 512, 2, False, False) == 2 * full


SEVEN_B = ["model=llama-2-7b", "precision=bf16_mixed", "data.batch_size=1", "data.max_length=512"]


# Llama-2-7B by hand: embeddings and untied head 32000 x 4096 each; per layer q, k, v, o 4096^2,
# gate, up, down 4096 x 11008, two RMSNorm weights; a final norm.
LLAMA2_7B_PARAMS = 2 * 32000 * 4096 + 32 * (4 * 4096**2 + 3 * 4096 * 11008 + 2 * 4096) + 4096
LLAMA2_7B_TENSORS = 2 + 32 * 9 + 1
# LoRA r=8 on every linear of a block: r * (in + out) per module.
LLAMA2_7B_LORA8 = 32 * 8 * (4 * (4096 + 4096) + 3 * (4096 + 11008))


def test_seven_b_full_fine_tuning_by_hand():
    est = estimate(compose_with([*SEVEN_B, "adapter=full"]))
    n = LLAMA2_7B_PARAMS
    assert est.total_params == est.trainable_params == n == 6_738_415_616
    assert est.weights == est.gradients == 2 * n  # the shape's bf16 weights (conf/model/llama-2-7b.yaml)
    assert est.optimizer_state == 4 * n + 4 * LLAMA2_7B_TENSORS  # two bf16 moments + a fp32 step each


def test_seven_b_lora_trainable_count_by_hand():
    est = estimate(compose_with([*SEVEN_B, "adapter=lora", "rank=8"]))
    assert est.trainable_params == LLAMA2_7B_LORA8
    assert est.gradients == 4 * LLAMA2_7B_LORA8  # peft keeps adapter weights in fp32 over a bf16 base


def test_objectives_declare_what_they_add():
    full_sft = estimate(compose_with(["adapter=full"]))
    full_dpo = estimate(compose_with(["adapter=full", "objective=dpo", "data=preference"]))
    assert full_dpo.weights == 2 * full_sft.weights  # the frozen reference copy
    lora_sft = estimate(compose_with(["adapter=lora"]))
    lora_dpo = estimate(compose_with(["adapter=lora", "objective=dpo", "data=preference"]))
    assert lora_dpo.weights == lora_sft.weights  # the reference is the adapter switched off
    hidden = model_config(compose_with([]).model.name_or_path).hidden_size
    ppo = estimate(compose_with(["adapter=lora", "objective=ppo", "data=prompts"]))
    assert ppo.trainable_params == lora_sft.trainable_params + hidden + 1  # the value head


def test_sharding_divides_what_each_strategy_shards():
    one = estimate(compose_with([*SEVEN_B, "adapter=full"]))
    fsdp = estimate(compose_with([*SEVEN_B, "adapter=full", "strategy=fsdp", "trainer.devices=8"]))
    assert fsdp.weights == pytest.approx(one.weights / 8, abs=1)
    assert fsdp.optimizer_state == pytest.approx(one.optimizer_state / 8, abs=1)
    zero2 = estimate(
        compose_with([*SEVEN_B, "adapter=full", "strategy=deepspeed_zero2", "trainer.devices=4"])
    )
    assert zero2.weights == one.weights and zero2.gradients == pytest.approx(one.gradients / 4, abs=1)
    fsdp2 = estimate(compose_with([*SEVEN_B, "adapter=full", "strategy=fsdp2", "trainer.devices=4"]))
    assert fsdp2.weights == pytest.approx(one.weights / 4, abs=1)
    hybrid = estimate(
        compose_with(
            [*SEVEN_B, "adapter=full", "strategy=fsdp_hybrid", "trainer.devices=4", "trainer.num_nodes=2"]
        )
    )
    assert hybrid.weights == pytest.approx(one.weights / 4, abs=1)  # sharded within a node only
    offload = estimate(compose_with([*SEVEN_B, "adapter=full", "strategy=deepspeed_zero3_offload"]))
    assert offload.optimizer_state == 0 and offload.weights == 0 and offload.cpu_offloaded > 0
