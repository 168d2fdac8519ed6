"""Every optimizer config builds and steps on this machine; schedules follow their formulas by hand."""

from __future__ import annotations

import math

import pytest
import torch
from hydra.utils import instantiate

import tunelab  # noqa: F401  (registers the config resolvers)
from tests.conftest import ROOT, compose_with

OPTIMIZERS = sorted(p.stem for p in (ROOT / "conf" / "optimizer").glob("*.yaml"))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_minimises_a_quadratic(name: str):
    cfg = compose_with([f"optimizer={name}", "lr=0.05"])
    torch.manual_seed(0)
    # 64x64 = 4096 values: large enough for bitsandbytes' 8-bit state (min_8bit_size).
    target = torch.randn(64, 64)
    weight = torch.nn.Parameter(torch.zeros(64, 64))
    optimizer = instantiate(cfg.optimizer.optimizer)([weight])
    start = ((weight - target) ** 2).sum().item()
    for _ in range(20):
        optimizer.zero_grad()
        ((weight - target) ** 2).sum().backward()
        optimizer.step()
    assert ((weight - target) ** 2).sum().item() < 0.9 * start


def test_adamw_is_fused_on_cuda_except_with_mixed_precision_clipping(monkeypatch):
    assert compose_with([]).optimizer.optimizer.fused is torch.cuda.is_available()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert compose_with([]).optimizer.optimizer.fused is True
    assert compose_with(["precision=bf16_mixed"]).optimizer.optimizer.fused is False
    unclipped = compose_with(["precision=bf16_mixed", "trainer.gradient_clip_val=null"])
    assert unclipped.optimizer.optimizer.fused is True


def test_eight_bit_state_is_one_byte_per_value():
    cfg = compose_with(["optimizer=adamw_8bit"])
    weight = torch.nn.Parameter(torch.randn(64, 64))
    optimizer = instantiate(cfg.optimizer.optimizer)([weight])
    weight.grad = torch.randn(64, 64)
    optimizer.step()
    state = optimizer.state[weight]
    assert state["state1"].dtype == torch.uint8 and state["state1"].numel() == 4096


@pytest.mark.parametrize(
    ("schedule", "step", "factor"),
    [
        # warmup 10 steps of 110: lr rises linearly, then decays over the remaining 100
        ("cosine", 5, 0.5),
        ("cosine", 60, 0.5 * (1 + math.cos(math.pi * 0.5))),
        ("cosine", 85, 0.5 * (1 + math.cos(math.pi * 0.75))),
        ("linear", 5, 0.5),
        ("linear", 60, 0.5),
        ("linear", 85, 0.25),
    ],
)
def test_schedule_by_hand(schedule: str, step: int, factor: float):
    cfg = compose_with([f"scheduler={schedule}", "lr=0.1"])
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = instantiate(cfg.optimizer.scheduler)(optimizer, num_training_steps=110)
    for _ in range(step):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * factor)


def test_scheduler_group_overrides_an_adapter_chosen_optimizer():
    cfg = compose_with(["adapter=galore", "scheduler=linear"])
    assert cfg.optimizer.optimizer._target_ == "galore_torch.GaLoreAdamW"
    assert cfg.optimizer.scheduler._target_ == "transformers.get_linear_schedule_with_warmup"


def test_clipping_accumulation_and_checkpointing_reach_the_run():
    cfg = compose_with(
        ["trainer.gradient_clip_val=0.5", "trainer.accumulate_grad_batches=4", "gradient_checkpointing=true"]
    )
    trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
    assert trainer.gradient_clip_val == 0.5 and trainer.accumulate_grad_batches == 4
    assert cfg.gradient_checkpointing is True
