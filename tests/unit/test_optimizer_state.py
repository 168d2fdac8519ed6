"""Adam's state built before the first step (conf/optimizer/adamw.yaml `initial_state`) trains the
same model, bit for bit, as torch's own lazy build inside the first step."""

from __future__ import annotations

import functools

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch.utils.data import DataLoader
from transformers import LlamaForCausalLM

from tests.conftest import tiny_llama_config
from tunelab.core.config import PACKAGE_CONF
from tunelab.objectives.causal_lm import CausalLMObjective
from tunelab.training.module import TuneLabModule
from tunelab.training.optimizer_state import build_adam_state

ADAM_KINDS = [
    functools.partial(torch.optim.AdamW, lr=1e-2, weight_decay=0.1),
    functools.partial(torch.optim.Adam, lr=1e-2, amsgrad=True),
]


class StateAtFirstForward(L.Callback):
    """How many weights had optimizer state when the first batch began."""

    filled_before_step: int | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.filled_before_step is None:
            self.filled_before_step = sum(bool(s) for s in trainer.optimizers[0].state.values())


def fit(make_optimizer, initial_state, freeze_first: bool = False):
    """Train a tiny Llama 4 steps; the model, the optimizer and the state count at the first forward."""
    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_llama_config())
    if freeze_first:  # LISA's inactive blocks: in the optimizer, no gradient
        model.model.layers[0].requires_grad_(False)
    ids = torch.randint(3, 64, (8, 6))
    rows = [{"input_ids": i, "attention_mask": torch.ones_like(i), "labels": i} for i in ids]
    groups = lambda m: [{"params": list(m.parameters())}]  # noqa: E731
    objective = CausalLMObjective("sft")
    module = TuneLabModule(model, objective, make_optimizer, param_groups=groups, initial_state=initial_state)
    probe = StateAtFirstForward()
    trainer = L.Trainer(
        max_steps=4,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[probe],
    )
    trainer.fit(module, train_dataloaders=DataLoader(rows, batch_size=2))
    return model, trainer.optimizers[0], probe.filled_before_step


@pytest.mark.parametrize("make_optimizer", ADAM_KINDS, ids=["adamw", "adam_amsgrad"])
def test_eager_state_trains_the_same_weights_as_torchs_lazy_state(make_optimizer):
    lazy_model, lazy_opt, lazy_before = fit(make_optimizer, None)
    eager_model, eager_opt, eager_before = fit(make_optimizer, build_adam_state)
    n_weights = len(list(lazy_model.parameters()))
    assert (lazy_before, eager_before) == (0, n_weights)
    for lazy, eager in zip(lazy_model.parameters(), eager_model.parameters(), strict=True):
        assert torch.equal(lazy, eager)
    lazy_state, eager_state = lazy_opt.state_dict()["state"], eager_opt.state_dict()["state"]
    assert lazy_state.keys() == eager_state.keys()
    for index, state in lazy_state.items():
        assert state.keys() == eager_state[index].keys()
        for key, value in state.items():
            assert value.dtype == eager_state[index][key].dtype
            assert torch.equal(value, eager_state[index][key])


def test_frozen_weights_stay_lazy():
    model, optimizer, before = fit(ADAM_KINDS[0], build_adam_state, freeze_first=True)
    frozen = list(model.model.layers[0].parameters())
    assert before == len(list(model.parameters())) - len(frozen)
    assert all(not optimizer.state[p] for p in frozen)  # never trained, never given state


def test_other_optimizers_are_left_to_build_their_own():
    weight = torch.nn.Parameter(torch.ones(3))
    sgd = torch.optim.SGD([weight], lr=0.1, momentum=0.9)
    assert build_adam_state(sgd) == 0 and not sgd.state[weight]


def test_adamw_config_declares_it():
    cfg = OmegaConf.load(PACKAGE_CONF / "optimizer" / "adamw.yaml")
    assert instantiate(cfg.initial_state).func is build_adam_state
