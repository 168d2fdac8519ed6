"""Mixtures of LoRA experts: X-LoRA's trained gate over frozen experts (adapter=xlora), and Arrow's
training-free routing (workflows/multi_adapter.py), on the tiny base with three stand-in experts."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from tests.unit.adapter_helpers import adapted_tiny, batch_loss
from tests.unit.test_adapters import compose_adapter, logits
from tunelab.adapters.base import ExportError, build_adapter, count_parameters
from tunelab.core.config import ConfigError
from tunelab.training.module import TuneLabModule

TASKS = ("arithmetic", "reverse", "repeat")
STEPS = 4


@pytest.fixture(scope="module")
def experts(tmp_path_factory, tiny_model_dir) -> dict[str, str]:
    """Three rank-4 LoRAs with non-zero B (distinct seeds), saved like finished runs' adapter/."""
    dirs = {}
    for i, task in enumerate(TASKS):
        torch.manual_seed(i)
        config = LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM")
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), config)
        run_dir = tmp_path_factory.mktemp(task)
        model.save_pretrained(run_dir / "adapter")
        dirs[task] = str(run_dir)
    return dirs


def expert_overrides(experts: dict[str, str]) -> list[str]:
    return [f"+adapter.experts.{t}={d}" for t, d in experts.items()]


@pytest.fixture(scope="module")
def xlora_fit(experts):
    cfg = compose_adapter(
        "xlora",
        "data=multitask",
        "data.train.size=8",
        "data.batch_size=4",
        "lr=1e-2",
        *expert_overrides(experts),
    )
    built = adapted_tiny(cfg)
    data, objective, adapter, model = built.data, built.objective, built.adapter, built.model
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    batch = next(iter(data.train_dataloader()))
    before = batch_loss(objective, model, batch)
    module = TuneLabModule(model, objective, optimizer=instantiate(cfg.optimizer.optimizer))
    trainer = L.Trainer(
        max_steps=STEPS, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(module, datamodule=data)
    return cfg, adapter, model, frozen, batch, before, batch_loss(objective, model, batch)


def test_xlora_trains_only_its_gate(xlora_fit):
    """xlora_depth=1: one linear map hidden state -> one logit per expert (+ bias), by hand."""
    cfg, _, model, *_ = xlora_fit
    hidden = AutoModelForCausalLM.from_pretrained(cfg.model.name_or_path).config.hidden_size
    assert count_parameters(model)[0] == hidden * len(TASKS) + len(TASKS)


def test_xlora_lowers_the_loss_and_keeps_experts_and_base_frozen(xlora_fit):
    _, _, model, frozen, _, before, after = xlora_fit
    assert after < before, (before, after)
    now = dict(model.named_parameters())
    assert any("lora_A" in n for n in frozen)  # the experts are among the frozen tensors
    for name, tensor in frozen.items():
        assert torch.equal(now[name], tensor), name


def test_xlora_save_reload_gives_the_same_logits_and_export_refuses(xlora_fit, tmp_path):
    cfg, adapter, model, _, batch, *_ = xlora_fit
    artifact = adapter.save(model, tmp_path)
    reloaded = build_adapter(cfg.adapter).load(instantiate(cfg.model).model, artifact)
    torch.testing.assert_close(logits(reloaded, batch), logits(model, batch), atol=1e-5, rtol=1e-4)
    with pytest.raises(ExportError, match=r"adapter=xlora cannot be merged .* gate"):
        build_adapter(cfg.adapter).export(instantiate(cfg.model).model, artifact)


def test_xlora_refuses_missing_experts_before_the_model_loads(tmp_path):
    with pytest.raises(ConfigError, match=r"adapter\.experts is empty"):
        build_adapter(compose_adapter("xlora").adapter)
    cfg = compose_adapter("xlora", f"+adapter.experts.arithmetic={tmp_path}")
    with pytest.raises(ConfigError, match=rf"adapter\.experts\.arithmetic={tmp_path}: no peft adapter"):
        build_adapter(cfg.adapter)
