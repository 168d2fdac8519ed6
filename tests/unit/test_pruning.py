"""Pruning: achieved sparsity, importance scores by hand, structured shapes, recovery masks."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import AutoModelForCausalLM, LlamaForCausalLM

from tests.conftest import tiny_llama_config
from tunelab.core.config import ConfigError
from tunelab.pruning.base import sparsity_stats
from tunelab.pruning.importance import keep_top, l1, l2
from tunelab.pruning.recovery import KeepZeros
from tunelab.pruning.structured import StructuredPruner
from tunelab.pruning.unstructured import MagnitudePruner


class Block(nn.Module):
    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.up_proj = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        with torch.no_grad():
            self.up_proj.weight.copy_(weight)


class Toy(nn.Module):
    """Two 'blocks' named like a decoder stack (layers.N.*_proj), plus an embedding left dense."""

    def __init__(self, w0: torch.Tensor, w1: torch.Tensor) -> None:
        super().__init__()
        self.embed = nn.Embedding(3, 2)
        self.layers = nn.ModuleList([Block(w0), Block(w1)])


def tiny_llama(heads: int = 4, kv_heads: int = 2, layers: int = 3, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = tiny_llama_config(
        vocab_size=40, intermediate_size=24, num_hidden_layers=layers, num_attention_heads=heads,
        num_key_value_heads=kv_heads, pad_token_id=0, eos_token_id=1, bos_token_id=None,
    )  # fmt: skip
    return LlamaForCausalLM(config).eval()


def test_global_magnitude_zeroes_exactly_the_smallest_weights():
    w0 = torch.tensor([[1.0, -8.0], [3.0, 0.5]])
    w1 = torch.tensor([[-2.0, 7.0, 6.0], [4.0, -5.0, 0.25]])
    model = Toy(w0, w1)
    MagnitudePruner("m", sparsity=0.4).prune(model)  # 10 weights -> the 4 smallest |w| go
    # By hand: |w| sorted = 0.25, 0.5, 1, 2 | 3, 4, 5, 6, 7, 8
    assert torch.equal(model.layers[0].up_proj.weight, torch.tensor([[0.0, -8.0], [3.0, 0.0]]))
    assert torch.equal(model.layers[1].up_proj.weight, torch.tensor([[0.0, 7.0, 6.0], [4.0, -5.0, 0.0]]))
    assert not hasattr(model.layers[0].up_proj, "weight_orig")  # made permanent
    assert sparsity_stats(model)["sparsity"] == pytest.approx(0.4)


def test_layer_scope_prunes_each_layer_to_the_target():
    w0 = torch.tensor([[1.0, -8.0], [3.0, 0.5]])
    w1 = torch.tensor([[-2.0, 7.0], [4.0, -5.0]])
    model = Toy(w0, w1)
    MagnitudePruner("m", sparsity=0.5, scope="layer").prune(model)
    assert torch.equal(model.layers[0].up_proj.weight, torch.tensor([[0.0, -8.0], [3.0, 0.0]]))
    assert torch.equal(model.layers[1].up_proj.weight, torch.tensor([[0.0, 7.0], [0.0, -5.0]]))


@pytest.mark.parametrize("target", [0.3, 0.5, 0.9])
def test_achieved_sparsity_equals_target_on_the_tiny_model(tiny_model_dir, target):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    MagnitudePruner("m", sparsity=target).prune(model)
    weights = [m.weight for n, m in model.named_modules() if isinstance(m, nn.Linear) and "layers." in n]
    n = sum(w.numel() for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert zeros == round(target * n)  # torch's amount rounding: exactly the target count
    assert model.lm_head.weight.eq(0).sum() == 0  # embeddings / head untouched


def test_importance_scores_by_hand():
    a = torch.tensor([[3.0, -4.0], [1.0, 0.0]])
    b = torch.tensor([[0.0], [-2.0]])
    assert torch.allclose(l1([a, b]), torch.tensor([7.0, 3.0]))
    assert torch.allclose(l2([a, b]), torch.tensor([5.0, 5.0**0.5]))
    assert keep_top(torch.tensor([0.1, 5.0, 3.0, 4.0]), 2).tolist() == [1, 3]


def test_bad_prune_config_is_a_config_error():
    with pytest.raises(ConfigError, match=r"prune\.sparsity"):
        MagnitudePruner("m", sparsity=1.5)
    with pytest.raises(ConfigError, match=r"prune\.importance"):
        StructuredPruner("s", importance="fisher")
    with pytest.raises(ConfigError, match="drop_layers"):
        StructuredPruner("s", drop_layers=3).prune(tiny_llama(layers=3))


@torch.no_grad()
def test_structured_removes_zero_units_without_changing_outputs(tmp_path):
    """Units whose weights are zero contribute nothing: removing exactly them keeps the logits."""
    model = tiny_llama(heads=4, kv_heads=2)
    head_dim = 8
    for layer in model.model.layers:
        attn, mlp = layer.self_attn, layer.mlp
        # KV group 1 = kv head 1 and query heads 2, 3: its o_proj columns and q/k/v rows to zero.
        attn.o_proj.weight[:, 2 * head_dim :] = 0
        attn.q_proj.weight[2 * head_dim :] = 0
        attn.k_proj.weight[head_dim:] = 0
        attn.v_proj.weight[head_dim:] = 0
        mlp.gate_proj.weight[[1, 5, 7, 20, 21, 22]] = 0  # 6 of 24 neurons
        mlp.up_proj.weight[[1, 5, 7, 20, 21, 22]] = 0
        mlp.down_proj.weight[:, [1, 5, 7, 20, 21, 22]] = 0
    kept_q = model.model.layers[0].self_attn.q_proj.weight[: 2 * head_dim].clone()
    ids = torch.tensor([[3, 9, 4, 22, 17]])
    before = model(ids).logits

    StructuredPruner("s", importance="l1", head_fraction=0.5, neuron_fraction=0.25).prune(model)
    attn = model.model.layers[0].self_attn
    assert attn.q_proj.weight.shape == (16, 32) and attn.k_proj.weight.shape == (8, 32)
    assert attn.o_proj.weight.shape == (32, 16)
    assert model.model.layers[0].mlp.gate_proj.weight.shape == (18, 32)
    assert torch.equal(attn.q_proj.weight, kept_q)
    assert (model.config.num_attention_heads, model.config.num_key_value_heads) == (2, 1)
    assert model.config.intermediate_size == 18
    assert torch.allclose(model(ids).logits, before, atol=1e-5)

    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert torch.allclose(reloaded(ids).logits, before, atol=1e-5)
    out = reloaded.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=0)
    assert out.shape == (1, 9)


@torch.no_grad()
def test_drop_layers_removes_the_lowest_scoring_block(tmp_path):
    model = tiny_llama(layers=3)
    for p in model.model.layers[1].parameters():
        p.mul_(0.01)  # block 1 has by far the smallest weights
    keep = [model.model.layers[0], model.model.layers[2]]
    StructuredPruner("s", importance="l2", drop_layers=1).prune(model)
    assert list(model.model.layers) == keep
    assert [layer.self_attn.layer_idx for layer in model.model.layers] == [0, 1]
    assert model.config.num_hidden_layers == 2
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert len(reloaded.model.layers) == 2
    ids = torch.tensor([[3, 9, 4]])
    assert torch.allclose(reloaded(ids).logits, model(ids).logits, atol=1e-5)
    assert reloaded.generate(ids, max_new_tokens=3, do_sample=False, pad_token_id=0).shape == (1, 6)


@torch.no_grad()
def test_keep_zeros_restores_the_base_zeros_only():
    base = Toy(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([[0.0, 3.0], [4.0, 5.0]]))
    pruner = KeepZeros("k")
    pruner.observe(base)
    for p in base.layers.parameters():
        p.add_(0.5)  # training (a merged LoRA update) refills every weight
    pruner.prune(base)
    assert torch.equal(base.layers[0].up_proj.weight, torch.tensor([[1.5, 0.0], [0.0, 2.5]]))
    assert torch.equal(base.layers[1].up_proj.weight, torch.tensor([[0.0, 3.5], [4.5, 5.5]]))


def test_head_count_is_rounded_to_one_transformers_accepts():
    from tunelab.pruning.structured import valid_head_groups

    assert valid_head_groups(5, 1, 192) == 4  # 192 % 5 != 0
    assert valid_head_groups(3, 2, 192) == 3  # 6 heads: 192 % 6 == 0
    assert valid_head_groups(5, 2, 200) == 5  # 10 heads divide 200
