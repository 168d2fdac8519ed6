"""The training guards stop a run before a NaN reaches the weights or a 0.0 loss is reported."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from tunelab.training.callbacks.guards import NonFiniteError, TrainingGuards, ZeroTokenError, float64_norm


class Module(torch.nn.Module):
    def __init__(self, grad: float):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(3))
        self.w.grad = torch.tensor([0.1, grad, 0.2])
        self.logged: dict[str, float] = {}

    def log(self, name: str, value: float) -> None:
        self.logged[name] = value


def trainer(loss: float, supervised: float, step: int = 7) -> SimpleNamespace:
    metrics = {"train/loss": torch.tensor(loss), "train/supervised_tokens": torch.tensor(supervised)}
    return SimpleNamespace(callback_metrics=metrics, global_step=step)


@pytest.mark.parametrize(("loss", "grad"), [(float("nan"), 0.0), (float("inf"), 0.0), (1.0, float("nan"))])
def test_non_finite_stops_before_the_optimizer_step(loss, grad):
    module = Module(grad)
    with pytest.raises(NonFiniteError, match="at step 7"):
        TrainingGuards().on_before_optimizer_step(trainer(loss, 5.0), module, None)


def test_finite_step_passes():
    TrainingGuards().on_before_optimizer_step(trainer(1.0, 5.0), Module(0.3), None)


def test_zero_token_batches_are_counted_then_fail_past_the_limit():
    guards, module = TrainingGuards(zero_token_batch_limit=2), Module(0.0)
    guards.on_train_batch_end(trainer(0.0, 4.0), module, None, None, 0)
    assert guards.zero_token_batches == 0
    for _ in range(2):
        guards.on_train_batch_end(trainer(0.0, 0.0), module, None, None, 0)
    assert guards.zero_token_batches == 2 and module.logged["train/zero_token_batches"] == 2.0
    with pytest.raises(ZeroTokenError, match="3 batches had no supervised token"):
        guards.on_train_batch_end(trainer(0.0, 0.0), module, None, None, 0)


def test_float64_norm_in_chunks_by_hand():
    # 3-4-12-84 chain: |(3, 4, 12, 84)| = 85, split into chunks of 1 and 3 elements.
    w = torch.tensor([[3.0, 4.0], [12.0, 84.0]])
    assert float64_norm(w, chunk=1) == 85.0
    assert float64_norm(w, chunk=3) == 85.0
    assert float64_norm(torch.tensor([1e200, 1e200], dtype=torch.float64), chunk=1) == pytest.approx(
        2**0.5 * 1e200
    )  # the squares would overflow
    assert float64_norm(torch.tensor([1.0, float("inf")])) == float("inf")
