"""peft's other tuners (one yaml each in conf/adapter/), trained in-process for a few steps.

The trainable count is checked against peft's own count on a fresh copy of the base (these tuners
have no one-line formula); the rest as in test_adapters.py: the loss falls, frozen weights stay
bit-identical, save -> reload gives the same logits, and export merges exactly or refuses clearly.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import lightning as L
import pytest
import torch
from hydra.utils import get_class, instantiate
from peft import get_peft_model
from transformers import AutoModelForCausalLM

from tests.conftest import ROOT
from tests.unit.test_adapters import HAND_COUNTED, batch_loss, compose_adapter, logits, skip_if_no_bnb
from tunelab.adapters.base import ExportError, build_adapter, count_parameters
from tunelab.adapters.peft_adapter import PeftAdapter, PromptLearningAdapter
from tunelab.core.config import ConfigError
from tunelab.training.module import TuneLabModule

YAMLS = sorted(p.stem for p in (ROOT / "conf" / "adapter").glob("*.yaml"))
MIXTURES: set[str] = set()  # need trained experts or task ids: tested in their own file
ZOO = [n for n in YAMLS if n not in HAND_COUNTED | MIXTURES]
STEPS = 4
OVERRIDES = ["data.train.size=16", "data.batch_size=4", f"trainer.max_steps={STEPS}", "rank=4"]


@dataclass
class Fit:
    cfg: object
    adapter: PeftAdapter
    model: torch.nn.Module
    frozen_before: dict[str, torch.Tensor]
    batch: dict[str, torch.Tensor]
    loss_before: float
    loss_after: float
    trainable: int


@cache
def fit(name: str) -> Fit:
    """`adapter=name` on the tiny base, STEPS optimizer steps at the yaml's lr, its callbacks on."""
    cfg = compose_adapter(name, *OVERRIDES)
    L.seed_everything(0)
    data, objective = instantiate(cfg.data), instantiate(cfg.objective)
    adapter = build_adapter(cfg.adapter)
    loaded = instantiate(cfg.model)
    data.attach_tokenizer(loaded.tokenizer)
    model = adapter.apply(loaded.model)
    trainable, _ = count_parameters(model)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    batch = next(iter(data.train_dataloader()))
    before = batch_loss(objective, model, batch)
    module = TuneLabModule(
        model, objective, optimizer=instantiate(cfg.optimizer.optimizer), param_groups=adapter.param_groups
    )
    trainer = L.Trainer(
        max_steps=STEPS, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=adapter.callbacks(),
    )  # fmt: skip
    trainer.fit(module, datamodule=data)
    return Fit(cfg, adapter, model, frozen, batch, before, batch_loss(objective, model, batch), trainable)


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
