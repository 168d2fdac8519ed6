"""Chunked token log-probs: the same values and gradients as one full-vocabulary log-softmax."""

from __future__ import annotations

import math

import pytest
import torch

from tunelab.core.constants import IGNORE_INDEX
from tunelab.objectives.base import shifted_token_logprobs


def test_small_case_against_hand_softmax():
    logits = torch.tensor([[[1.0, 2.0, 0.0], [0.5, 0.5, 3.0], [2.0, 0.0, 1.0]]])
    labels = torch.tensor([[IGNORE_INDEX, 1, 2]])
    logprobs, mask = shifted_token_logprobs(logits, labels, chunk_size=1)
    # Position 0 predicts label 1 from [1, 2, 0]; position 1 predicts label 2 from [0.5, 0.5, 3].
    expected0 = 2.0 - math.log(math.e**1 + math.e**2 + 1)
    expected1 = 3.0 - math.log(2 * math.e**0.5 + math.e**3)
    assert mask.tolist() == [[True, True]]
    assert logprobs[0].tolist() == pytest.approx([expected0, expected1], abs=1e-6)


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 100])
def test_chunked_values_and_gradients_equal_unchunked(chunk_size):
    torch.manual_seed(0)
    logits = torch.randn(2, 9, 50, requires_grad=True)
    labels = torch.randint(0, 50, (2, 9))
    labels[0, :4] = IGNORE_INDEX  # a prompt
    labels[1, 7:] = IGNORE_INDEX  # padding

    full, full_mask = shifted_token_logprobs(logits, labels)
    (grad_full,) = torch.autograd.grad(full.sum(), logits)
    chunked, chunked_mask = shifted_token_logprobs(logits, labels, chunk_size=chunk_size)
    (grad_chunked,) = torch.autograd.grad(chunked.sum(), logits)

    assert torch.equal(full_mask, chunked_mask)
    torch.testing.assert_close(chunked, full)
    torch.testing.assert_close(grad_chunked, grad_full)
    # Independent reference: torch's own log_softmax.
    ref = torch.log_softmax(logits[:, :-1].detach(), -1).gather(-1, labels[:, 1:].clamp(min=0)[..., None])
    torch.testing.assert_close(chunked.detach(), ref.squeeze(-1) * full_mask)


def test_bfloat16_logits_are_computed_in_float32():
    torch.manual_seed(1)
    logits = torch.randn(1, 6, 40).bfloat16()
    labels = torch.randint(0, 40, (1, 6))
    chunked, _ = shifted_token_logprobs(logits, labels, chunk_size=2)
    assert chunked.dtype == torch.float32
    ref = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, labels[:, 1:, None]).squeeze(-1)
    torch.testing.assert_close(chunked, ref)
