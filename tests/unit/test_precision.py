"""Precision x adapter (x quantized base): each combination trains one real step through Lightning,
or stops before the model loads with a ConfigError naming the keys."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

import tunelab  # noqa: F401  (registers the config resolvers)
from tests.conftest import compose_with as compose_train
from tunelab.core.config import ConfigError
from tunelab.scaling import compat
from tunelab.scaling.model_levers import build_adapter_for
from tunelab.training.module import TuneLabModule

PRECISIONS = ["fp32", "bf16_mixed", "fp16_mixed", "bf16_true"]
ADAPTERS = [["adapter=lora"], ["adapter=full"], ["adapter=qlora"], ["adapter=ia3"]]
QUANTIZED = [["quantization=nf4", "adapter=lora"], ["quantization=int8", "adapter=dora"]]
QUANTIZED += [["quantization=fp4", "adapter=full"]]
MATRIX = [[f"precision={p}", *a] for p in PRECISIONS for a in ADAPTERS + QUANTIZED]
TINY = ["data.train.size=4", "data.batch_size=2", "trainer.max_steps=1", "trainer.accelerator=cpu"]


def compose_with(overrides: list[str]):
    """The training config with one-step tiny-run settings first."""
    return compose_train([*TINY, *overrides])


def one_step(cfg) -> tuple[float, float]:
    """(loss, largest change of a trainable weight) after one optimizer step of the real module."""
    data = instantiate(cfg.data)
    adapter = build_adapter_for(cfg)
    loaded = instantiate(cfg.model)
    data.attach_tokenizer(loaded.tokenizer)
    model = adapter.apply(loaded.model)
    before = {n: p.detach().float().clone() for n, p in model.named_parameters() if p.requires_grad}
    module = TuneLabModule(
        model,
        instantiate(cfg.objective),
        optimizer=instantiate(cfg.optimizer.optimizer),
        scheduler=None,
        param_groups=adapter.param_groups,
    )
    trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    model.train()
    trainer.fit(module, datamodule=data)
    moved = max(
        (p.detach().float() - before[n]).abs().max().item()
        for n, p in model.named_parameters()
        if n in before
    )
    return module.step_losses[0].float().item(), moved


def expected_refusal(overrides: list[str]) -> list[str]:
    """The keys a refusal must name on a CPU machine, written out by hand ([] = it must train):
    fp16 autocast needs CUDA; a quantized base cannot be fully fine-tuned."""
    if "precision=fp16_mixed" in overrides:
        return ["trainer.precision", "fp16_mixed"]
    if "quantization=fp4" in overrides and "adapter=full" in overrides:
        return ["quantization", "adapter=full"]
    return []


@pytest.mark.parametrize("overrides", MATRIX, ids=[" ".join(m) for m in MATRIX])
def test_combination_steps_or_names_its_keys(overrides, monkeypatch):
    monkeypatch.setattr(compat.Machine, "detect", classmethod(lambda cls: compat.Machine()))  # a CPU
    cfg = compose_with(overrides)
    keys = expected_refusal(overrides)
    if keys:
        with pytest.raises(ConfigError) as err:
            compat.check(cfg)
        assert all(key in str(err.value) for key in keys), str(err.value)
        return
    assert compat.problems(cfg) == []
    torch.manual_seed(0)
    loss, moved = one_step(cfg)
    assert torch.isfinite(torch.tensor(loss)) and loss > 0
    assert moved > 0  # the optimizer stepped the trainable weights


def test_fp16_and_full_on_4bit_are_refused_on_a_cpu_and_fp16_allowed_on_a_gpu():
    cpu, gpu = compat.Machine(), compat.Machine(cuda_devices=1, cuda_bf16=True)
    assert compat.problems(compose_with(["precision=fp16_mixed"]), cpu)
    assert compat.problems(compose_with(["precision=fp16_mixed", "trainer.accelerator=auto"]), gpu) == []
    assert compat.problems(compose_with(["quantization=nf4", "adapter=full"]), gpu)


def test_quantized_base_export_computes_what_was_trained(tmp_path):
    """`quantization=nf4 adapter=lora`: the merged export (LoRA folded into the dequantized base)
    gives the trained model's logits, as QLoRA's export does."""
    cfg = compose_with(["quantization=nf4", "adapter=lora"])
    adapter = build_adapter_for(cfg)
    torch.manual_seed(0)
    model = adapter.apply(instantiate(cfg.model).model)
    with torch.no_grad():  # a non-zero LoRA update, as after training
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    artifact = adapter.save(model, tmp_path)
    merged = adapter.export(instantiate(cfg.model).model, artifact)
    ids = torch.randint(3, 100, (2, 12))
    with torch.no_grad():
        trained, exported = model(input_ids=ids).logits, merged(input_ids=ids).logits
    assert not any("Linear4bit" in type(m).__name__ for m in merged.modules())
    assert torch.allclose(trained, exported, atol=1e-3), (trained - exported).abs().max()
