"""peft's other tuners (one yaml each in conf/adapter/), trained in-process for a few steps.

The trainable count is checked against peft's own count on a fresh copy of the base (these tuners
have no one-line formula); the rest as in test_adapters.py: the loss falls, frozen weights stay
bit-identical, save -> reload gives the same logits, and export merges exactly or refuses clearly.
"""

from __future__ import annotations

from functools import cache

import pytest
import torch
from hydra.utils import get_class, instantiate
from peft import get_peft_model
from transformers import AutoModelForCausalLM

from tests.conftest import ROOT
from tests.unit.adapter_helpers import Fit, fit_adapter
from tests.unit.test_adapters import HAND_COUNTED, compose_adapter, logits, skip_if_no_bnb
from tunelab.adapters.base import ExportError, build_adapter
from tunelab.adapters.peft_adapter import PeftAdapter, PromptLearningAdapter
from tunelab.core.config import ConfigError

YAMLS = sorted(p.stem for p in (ROOT / "conf" / "adapter").glob("*.yaml"))
# built from trained experts (tests/unit/test_lora_mixtures.py), or routed experts of tunelab's own
# (memory_experts: tests/unit/test_memory_tuning.py)
MIXTURES = {"xlora", "memory_experts"}
ZOO = [n for n in YAMLS if n not in HAND_COUNTED | MIXTURES]
STEPS = 4
OVERRIDES = ["data.train.size=16", "data.batch_size=4", f"trainer.max_steps={STEPS}", "rank=4"]


@cache
def fit(name: str) -> Fit:
    """`adapter=name` on the tiny base, STEPS optimizer steps at the yaml's lr, its callbacks on."""
    return fit_adapter(compose_adapter(name, *OVERRIDES), STEPS)


def peft_own_count(cfg) -> int:
    """peft's count of trainable parameters for the yaml's peft config, on a fresh base copy."""
    base = AutoModelForCausalLM.from_pretrained(cfg.model.name_or_path)
    trainable, _ = get_peft_model(base, instantiate(cfg.adapter.peft_config)).get_nb_trainable_parameters()
    return trainable


def test_every_adapter_yaml_is_tested_somewhere():
    assert set(YAMLS) == HAND_COUNTED | set(ZOO) | MIXTURES
    for name in ZOO:  # the zoo is peft's tuners only, each through the generic adapter or a subclass
        assert issubclass(get_class(compose_adapter(name).adapter._target_), PeftAdapter), name


@pytest.mark.parametrize("name", ZOO)
def test_trainable_count_is_peft_own_count(name):
    skip_if_no_bnb("qlora" if name == "loftq" else name)
    f = fit(name)
    assert f.trainable == peft_own_count(f.cfg) > 0


@pytest.mark.parametrize("name", ZOO)
def test_a_few_steps_lower_the_loss(name):
    skip_if_no_bnb("qlora" if name == "loftq" else name)
    f = fit(name)
    assert f.loss_after < f.loss_before, (f.loss_before, f.loss_after)


@pytest.mark.parametrize("name", ZOO)
def test_frozen_weights_are_bit_identical(name):
    skip_if_no_bnb("qlora" if name == "loftq" else name)
    f = fit(name)
    after = dict(f.model.named_parameters())
    for param_name, before in f.frozen_before.items():
        assert torch.equal(after[param_name], before), param_name


@pytest.mark.parametrize("name", ZOO)
def test_save_reload_and_export(name, tmp_path):
    """Reloaded logits equal the trained ones; export merges to the same logits or refuses."""
    skip_if_no_bnb("qlora" if name == "loftq" else name)
    f = fit(name)
    artifact = f.adapter.save(f.model, tmp_path)
    expected = logits(f.model, f.batch)
    reloaded = build_adapter(f.cfg.adapter).load(instantiate(f.cfg.model).model, artifact)
    torch.testing.assert_close(logits(reloaded, f.batch), expected, atol=1e-5, rtol=1e-4)
    fresh = build_adapter(f.cfg.adapter)
    base = instantiate(f.cfg.model).model
    if fresh.unmergeable or isinstance(fresh, PromptLearningAdapter):
        with pytest.raises(ExportError, match=rf"adapter={name} cannot be merged"):
            fresh.export(base, artifact)
        return
    fresh.export(base, artifact).save_pretrained(tmp_path / "export")
    standalone = AutoModelForCausalLM.from_pretrained(tmp_path / "export")
    torch.testing.assert_close(logits(standalone, f.batch), expected, atol=1e-4, rtol=1e-3)


# ---------- method-specific checks ----------


def test_adalora_cuts_the_rank_budget_to_target_r_on_average():
    """After its schedule, the non-zero singular values left are target_r per targeted layer
    (the paper's final budget), counted by hand from the lora_E vectors."""
    f = fit("adalora")
    config = f.cfg.adapter.peft_config
    singular = [p for n, p in f.model.named_parameters() if "lora_E" in n]
    assert len(singular) == 4 * 7  # tiny base: 4 blocks x 7 linear layers
    kept = sum(int((e != 0).sum()) for e in singular)
    assert sum(e.numel() for e in singular) == config.init_r * len(singular)
    assert kept == config.target_r * len(singular)


def test_adalora_orthogonality_term_equals_peft_labels_loss_term(tiny_model_dir):
    """The callback's regulariser is the one peft adds to a `labels=` loss: (loss with labels)
    - (cross-entropy alone) = orth_reg_weight * penalty."""
    from tunelab.adapters.adalora import orthogonality_penalty

    cfg = compose_adapter("adalora", *OVERRIDES)
    model = build_adapter(cfg.adapter).apply(AutoModelForCausalLM.from_pretrained(tiny_model_dir))
    torch.manual_seed(0)
    for n, p in model.named_parameters():  # move A and B off their initialisation
        if "lora_A" in n or "lora_B" in n:
            p.data += 0.1 * torch.randn_like(p)
    ids = torch.tensor([[5, 40, 41, 42, 43, 2]])
    with torch.no_grad():
        with_labels = model(input_ids=ids, labels=ids).loss
        plain = model(input_ids=ids).logits[0, :-1].log_softmax(-1).gather(1, ids[0, 1:, None]).mean().neg()
        penalty = orthogonality_penalty(model)
    torch.testing.assert_close(with_labels - plain, cfg.adapter.peft_config.orth_reg_weight * penalty)


def test_adalora_refuses_a_schedule_with_no_budgeting_steps():
    cfg = compose_adapter("adalora", "trainer.max_steps=4", "adapter.warmup_fraction=0.8")
    with pytest.raises(ConfigError, match=r"adapter\.warmup_fraction=0\.8 .* no steps to reallocate"):
        build_adapter(cfg.adapter)


def test_loftq_initial_error_is_the_best_rank_r_fit(tiny_model_dir):
    """Eckart-Young, per layer: after LoftQ's start, ||W - (dequant(Q) + s·B·A)||² equals
    ||W - dequant(Q)||² minus the top-r squared singular values of that residual (torch's svdvals),
    where QLoRA's zero-B start leaves all of it."""
    import bitsandbytes.functional as F

    skip_if_no_bnb("qlora")
    originals = dict(AutoModelForCausalLM.from_pretrained(tiny_model_dir).named_parameters())
    cfg = compose_adapter("loftq", *OVERRIDES)
    model = build_adapter(cfg.adapter).apply(AutoModelForCausalLM.from_pretrained(tiny_model_dir))
    layers = [(n, m) for n, m in model.named_modules() if hasattr(m, "lora_A") and "default" in m.lora_A]
    assert len(layers) == 4 * 7
    for name, layer in layers:
        base = layer.get_base_layer()
        dequantized = F.dequantize_4bit(base.weight.data, base.weight.quant_state).float()
        residual = originals[name.removeprefix("base_model.model.") + ".weight"] - dequantized
        update = layer.scaling["default"] * layer.lora_B["default"].weight @ layer.lora_A["default"].weight
        sigma = torch.linalg.svdvals(residual)
        best = residual.square().sum() - sigma[: layer.r["default"]].square().sum()
        torch.testing.assert_close((residual - update).square().sum(), best, rtol=1e-3, atol=1e-6)
        assert best < 0.99 * residual.square().sum()


def test_loftq_refuses_an_8bit_base():
    cfg = compose_adapter("loftq", "adapter.quantization.bits=8")
    with pytest.raises(ConfigError, match=r"adapter=loftq with adapter\.quantization\.bits=8"):
        build_adapter(cfg.adapter)


# ---------- the quantized-base column of docs/adapters.md, checked for real ----------


@pytest.mark.parametrize("name", [n for n in ZOO if n != "loftq"])  # loftq: its own NF4 base, above
def test_quantized_base_claim_holds(name, tmp_path):
    """Where compat allows `quantization=nf4`, the tuner gets gradients on the NF4 base and its
    saved adapter computes the same on the dequantized base; where compat refuses, peft really
    fails there (or no gradient reaches the tuner)."""
    from tunelab.adapters.qlora import Quantization, dequantize_base, quantize_base
    from tunelab.scaling.compat import problems
    from tunelab.scaling.compat_table import GPU_NODE
    from tunelab.scaling.model_levers import build_adapter_for

    skip_if_no_bnb("qlora")
    cfg = compose_adapter(name, *OVERRIDES, "quantization=nf4")
    refused = problems(cfg, GPU_NODE)
    ids = torch.tensor([[5, 40, 41, 42, 43, 44, 2]])
    torch.manual_seed(0)
    try:
        adapter = build_adapter_for(cfg)
        model = adapter.apply(instantiate(cfg.model).model)
        model(input_ids=ids, labels=ids).loss.backward()
        reached = any(
            p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters() if p.requires_grad
        )
    except Exception as error:
        assert refused, f"compat allows {name} on an NF4 base but it fails: {error!r}"
        return
    assert bool(refused) == (not reached), (refused, reached)
    if refused:
        return
    with torch.no_grad():  # a trained-looking adapter: every trainable tensor moved
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.02 * torch.randn_like(p))
    artifact = adapter.save(model, tmp_path)
    float_base = dequantize_base(
        quantize_base(instantiate(cfg.model).model, Quantization(**cfg.quantization))
    )
    on_float = build_adapter(cfg.adapter).load(float_base, artifact)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    torch.testing.assert_close(logits(on_float, batch), logits(model, batch), atol=1e-3, rtol=1e-3)
