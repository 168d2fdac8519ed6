"""The sft/cpt loss against a hand computation on small tensors."""

from __future__ import annotations

import math

import torch

from tunelab.objectives.causal_lm import CausalLMObjective


class FixedLogits(torch.nn.Module):
    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits

    def forward(self, input_ids, attention_mask, use_cache=None):
        return type("Out", (), {"logits": self.logits})()


def test_loss_is_mean_nll_over_supervised_next_tokens():
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0], [1.0, 1.0, 1.0]]])
    labels = torch.tensor([[-100, 1, -100, 0]])
    batch = {
        "input_ids": torch.zeros(1, 4, dtype=torch.long),
        "attention_mask": torch.ones(1, 4),
        "labels": labels,
    }
    out = CausalLMObjective("sft")(FixedLogits(logits), batch)

    def nll(row, target):
        return -(row[target] - math.log(sum(math.exp(v) for v in row)))

    # Position 0 predicts label[1] = 1; position 2 predicts label[3] = 0; position 1's target is ignored.
    expected = (nll([2.0, 0.0, 0.0], 1) + nll([0.0, 0.0, 3.0], 0)) / 2
    assert out.supervised_tokens.item() == 2
    assert math.isclose(out.loss.item(), expected, rel_tol=1e-6)
