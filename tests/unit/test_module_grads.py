"""The module frees an optimizer step's gradients before the next forward, never inside an
accumulation window, and keeps the final step's (what `allocated_bytes` measures)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader
from transformers import LlamaForCausalLM

from tests.conftest import tiny_llama_config
from tunelab.objectives.causal_lm import CausalLMObjective
from tunelab.training.module import TuneLabModule


def fit(accumulate: int, steps: int) -> tuple[list[bool], LlamaForCausalLM]:
    """Train; per forward, whether any weight held a gradient when it began."""
    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_llama_config())
    held: list[bool] = []
    model.register_forward_pre_hook(lambda m, a: held.append(any(p.grad is not None for p in m.parameters())))
    ids = torch.randint(3, 64, (8, 6))
    rows = [{"input_ids": i, "attention_mask": torch.ones_like(i), "labels": i} for i in ids]
    loader = DataLoader(rows, batch_size=2)
    module = TuneLabModule(model, CausalLMObjective("sft"), optimizer=lambda g: torch.optim.SGD(g, lr=0.1))
    trainer = L.Trainer(
        max_steps=steps,
        accumulate_grad_batches=accumulate,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, train_dataloaders=loader)
    return held, model


CASES = [(1, [False, False, False]), (2, [False, True, False, True])]  # 3 steps of 1 batch, 2 of 2


@pytest.mark.parametrize(("accumulate", "expected"), CASES)
def test_gradients_are_freed_before_the_next_forward_but_not_while_accumulating(accumulate, expected):
    held, model = fit(accumulate, steps=3 if accumulate == 1 else 2)
    assert held == expected
    assert all(p.grad is not None for p in model.parameters())  # the final step's gradients stay
