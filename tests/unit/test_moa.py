"""Mixture-of-agents row: the aggregator keeps the candidate it finds most likely, recomputed here
by a plain forward pass of the base model (no tunelab code)."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM

from tests.unit.test_multi_adapter import make_adapter
from tunelab.models.load import load_tokenizer
from tunelab.workflows.moa import aggregate, moa_scores, propose
from tunelab.workflows.multi_adapter import exact_match_task, load_adapters


def hand_logprob(base, tokenizer, prompt: str, candidate: str) -> float:
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    a = tokenizer(candidate, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    with torch.no_grad():
        logits = base(input_ids=torch.tensor([p + a])).logits[0]
    total = 0.0
    for i, token in enumerate(a):  # token i of the answer is predicted at position len(p) + i - 1
        total += torch.log_softmax(logits[len(p) + i - 1], -1)[token].item()
    return total


def test_aggregator_keeps_the_candidate_the_base_finds_most_likely(tmp_path, tiny_model_dir):
    make_adapter(tiny_model_dir, tmp_path / "a", seed=1)
    make_adapter(tiny_model_dir, tmp_path / "b", seed=2)
    paths = {"arithmetic": tmp_path / "a", "reverse": tmp_path / "b"}
    model = load_adapters(AutoModelForCausalLM.from_pretrained(tiny_model_dir), paths)
    tokenizer = load_tokenizer(str(tiny_model_dir))
    spec = exact_match_task("reverse", 6)
    prompts, _ = spec.prompts(tokenizer)
    answers = propose(model, tokenizer, prompts, list(paths), spec.max_new_tokens)
    chosen = aggregate(model, tokenizer, prompts, answers, aggregator=None)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    for i, prompt in enumerate(prompts):
        candidates = list(dict.fromkeys(col[i] for col in answers.values()))
        scores = [hand_logprob(base, tokenizer, prompt, c) for c in candidates]
        assert chosen[i] == candidates[scores.index(max(scores))]
        assert chosen[i] in candidates


def test_moa_never_beats_its_ceiling(tmp_path, tiny_model_dir):
    make_adapter(tiny_model_dir, tmp_path / "a", seed=1)
    make_adapter(tiny_model_dir, tmp_path / "b", seed=2)
    paths = {"arithmetic": tmp_path / "a", "reverse": tmp_path / "b"}
    model = load_adapters(AutoModelForCausalLM.from_pretrained(tiny_model_dir), paths)
    tokenizer = load_tokenizer(str(tiny_model_dir))
    moa, ceiling = moa_scores(model, tokenizer, ["reverse"], list(paths), aggregator="reverse", limit=6)
    assert 0.0 <= moa["reverse"] <= ceiling["reverse"] <= 1.0
