"""NEFTune: uniform noise of scale alpha/sqrt(L·d) on the input embeddings, in training only."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import LlamaForCausalLM

from tests.conftest import tiny_llama_config
from tunelab.core.config import ConfigError
from tunelab.training.callbacks.neftune import NEFTune, add_noise, neftune_callbacks


def test_noise_is_uniform_with_bound_alpha_over_sqrt_length_times_dim():
    torch.manual_seed(0)
    rows, width, dim, alpha = 3, 40, 64, 5.0
    embeds = torch.randn(rows, width, dim)
    mask = torch.zeros(rows, width, dtype=torch.long)
    lengths = [40, 25, 4]
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
    noise = add_noise(embeds, alpha, mask) - embeds
    for row, n in enumerate(lengths):
        bound = alpha / math.sqrt(n * dim)  # by hand: 5/sqrt(40*64) = 0.0988, 5/sqrt(25*64) = 0.125, ...
        values = noise[row]
        assert values.abs().max() <= bound * (1 + 1e-6)
        assert values.abs().max() >= 0.99 * bound  # 2560 uniform draws reach the edge
        # Uniform(-b, b) has mean 0 and variance b²/3.
        assert abs(values.mean().item()) < 0.05 * bound
        assert values.var().item() == pytest.approx(bound**2 / 3, rel=0.1)


def test_without_a_mask_the_padded_width_is_the_length():
    torch.manual_seed(1)
    embeds = torch.zeros(2, 50, 32)
    noise = add_noise(embeds, 10.0, None)
    bound = 10.0 / math.sqrt(50 * 32)
    assert noise.abs().max() <= bound * (1 + 1e-6)
    assert noise.var().item() == pytest.approx(bound**2 / 3, rel=0.1)


def tiny_llama() -> LlamaForCausalLM:
    config = tiny_llama_config(
        vocab_size=50, hidden_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
        max_position_embeddings=2048,
    )  # fmt: skip
    torch.manual_seed(0)
    return LlamaForCausalLM(config)


def test_the_hook_adds_noise_in_training_only_and_comes_off():
    model = tiny_llama()
    ids = torch.tensor([[1, 2, 3, 4, 5, 0], [6, 7, 8, 0, 0, 0]])
    mask = (ids != 0).long()
    embed = model.get_input_embeddings()
    clean = embed(ids).detach()
    seen: list[torch.Tensor] = []
    model.model.layers[0].register_forward_pre_hook(
        lambda m, args, kw: seen.append(args[0] if args else kw["hidden_states"]), with_kwargs=True
    )

    neftune = NEFTune(alpha=8.0)
    neftune.install(model)
    model.train()
    model(input_ids=ids, attention_mask=mask)
    noise = seen[-1] - clean
    for row, n in enumerate([5, 3]):  # each row's own length from its attention mask
        bound = 8.0 / math.sqrt(n * 64)
        assert 0.95 * bound <= noise[row, :n].abs().max() <= bound * (1 + 1e-6)

    model.eval()
    model(input_ids=ids, attention_mask=mask)
    assert torch.equal(seen[-1], clean)  # eval: no noise
    model.train()
    with torch.no_grad():  # a reference model's forward, or generation
        model(input_ids=ids, attention_mask=mask)
    assert torch.equal(seen[-1], clean)

    neftune.remove()
    model(input_ids=ids, attention_mask=mask)
    assert torch.equal(seen[-1], clean)


def test_config_knob():
    assert neftune_callbacks(None) == [] and neftune_callbacks(0) == []
    assert neftune_callbacks(5.0)[0].alpha == 5.0
    with pytest.raises(ConfigError, match=r"neftune_alpha=-1: expected a positive number"):
        neftune_callbacks(-1)
