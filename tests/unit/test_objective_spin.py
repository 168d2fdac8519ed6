"""SPIN: pairs built from (ground truth, t-1 model's answer), the loss by hand, one generation per prompt."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from tests.unit.online_helpers import EOS, PAD, tiny_llama
from tunelab.core.constants import IGNORE_INDEX
from tunelab.objectives import spin as spin_module
from tunelab.objectives.reference import build_reference
from tunelab.objectives.spin import SPINObjective, pair_rows


def prompt_batch() -> dict:
    """Two left-padded prompts and their ground-truth answers (right-padded with -100)."""
    return {
        "input_ids": torch.tensor([[PAD, 5, 6], [7, 8, 9]]),
        "attention_mask": torch.tensor([[0, 1, 1], [1, 1, 1]]),
        "target_ids": torch.tensor([[3, 4, EOS], [5, EOS, IGNORE_INDEX]]),
        "prompts": ["a", "b"],
        "answers": ["x", "y"],
    }


def summed_logp(model, prompt: list[int], answer: list[int]) -> float:
    """log p(answer | prompt) token by token, without the code under test."""
    ids = torch.tensor([prompt + answer])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].double()
    logprobs = torch.log_softmax(logits, -1)
    return sum(float(logprobs[len(prompt) + i - 1, tok]) for i, tok in enumerate(answer))


def test_pair_rows_by_hand():
    batch = pair_rows([[1, 2], [3]], [[7, EOS], [8, 9, EOS]], [[5, EOS], [6]], pad_id=PAD)
    assert batch["input_ids"].tolist() == [[1, 2, 7, 2], [3, 8, 9, 2], [1, 2, 5, 2], [3, 6, 0, 0]]
    x = IGNORE_INDEX
    assert batch["labels"].tolist() == [[x, x, 7, 2], [x, 8, 9, 2], [x, x, 5, 2], [x, 6, x, x]]


def make_objective(beta: float = 0.5, nll_weight: float = 0.0) -> SPINObjective:
    objective = SPINObjective(
        beta=beta, generation={"max_new_tokens": 4, "do_sample": False}, nll_weight=nll_weight
    )
    objective.attach_tokenizer(SimpleNamespace(pad_token_id=PAD, eos_token_id=EOS))
    return objective


def moved_policy_and_reference():
    """A policy moved away from the t-1 model, and the t-1 model as a frozen copy (the reference)."""
    previous = tiny_llama(seed=0)
    reference = build_reference(previous)
    with torch.no_grad():
        for p in previous.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return previous, reference


def test_spin_loss_is_ln2_when_policy_is_the_previous_model():
    model = tiny_llama()
    out = make_objective()(model, prompt_batch(), reference=build_reference(model))
    assert out.loss.item() == pytest.approx(math.log(2), abs=1e-6)


def test_spin_loss_by_hand_against_the_t_minus_1_model():
    policy, reference = moved_policy_and_reference()
    objective = make_objective(beta=0.5)
    out = objective(policy, prompt_batch(), reference=reference)
    prompts, real = [[5, 6], [7, 8, 9]], [[3, 4, EOS], [5, EOS]]
    losses = []
    for prompt, y in zip(prompts, real, strict=True):
        y_gen = objective.generated[tuple(prompt)]
        margin = (summed_logp(policy, prompt, y) - summed_logp(reference.target, prompt, y)) - (
            summed_logp(policy, prompt, y_gen) - summed_logp(reference.target, prompt, y_gen)
        )
        losses.append(math.log1p(math.exp(-0.5 * margin)))  # -log σ(λ·margin)
    assert out.loss.item() == pytest.approx(sum(losses) / 2, abs=1e-5)


def test_rejected_answers_come_from_the_t_minus_1_model_once_per_prompt(monkeypatch):
    model = tiny_llama()
    reference = build_reference(model)
    calls = []

    def counting_sample(target, *args, **kw):
        calls.append(target)
        return real_sample(target, *args, **kw)

    real_sample = spin_module.sample
    monkeypatch.setattr(spin_module, "sample", counting_sample)
    objective = make_objective()
    objective(model, prompt_batch(), reference=reference)
    objective(model, prompt_batch(), reference=reference)  # a second epoch over the same prompts
    assert calls == [reference.target]  # the frozen t-1 model, and only once
    # Greedy answers of the t-1 model, recomputed here with generate directly.
    expected = reference.target.generate(
        input_ids=torch.tensor([[7, 8, 9]]),
        max_new_tokens=4,
        do_sample=False,
        pad_token_id=PAD,
        eos_token_id=EOS,
    )[0, 3:].tolist()
    if EOS in expected:
        expected = expected[: expected.index(EOS) + 1]
    assert objective.generated[(7, 8, 9)] == expected


def test_nll_weight_adds_the_real_answers_token_mean_nll():
    policy, reference = moved_policy_and_reference()
    plain = make_objective(beta=0.5)
    with_nll = make_objective(beta=0.5, nll_weight=0.7)  # through the constructor, as the config does
    loss_plain = plain(policy, prompt_batch(), reference=reference).loss.item()
    loss_nll = with_nll(policy, prompt_batch(), reference=reference).loss.item()
    prompts, real = [[5, 6], [7, 8, 9]], [[3, 4, EOS], [5, EOS]]
    total_logp = sum(summed_logp(policy, p, y) for p, y in zip(prompts, real, strict=True))
    nll = -total_logp / sum(len(y) for y in real)  # token mean over both real answers (5 tokens)
    assert loss_nll == pytest.approx(loss_plain + 0.7 * nll, abs=1e-5)
