"""Several LoRA adapters on one base: the `cat` merge is the weighted sum of their updates, switching
gives each adapter's own model, and the comparison scores every variant on every task."""

from __future__ import annotations

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

from tunelab.models.load import load_tokenizer
from tunelab.workflows.multi_adapter import BASE, ROUTED, add_merge, compare, load_adapters, to_markdown


def make_adapter(base_dir, out, seed: int):
    """A LoRA on q_proj/v_proj with random (non-zero) A and B, saved to `out`."""
    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(base, config)
    model.save_pretrained(out)
    return model


def delta(model: PeftModel, adapter: str, module: str = "base_model.model.model.layers.0.self_attn.q_proj"):
    layer = dict(model.named_modules())[module]
    return (layer.lora_B[adapter].weight @ layer.lora_A[adapter].weight) * layer.scaling[adapter]


@torch.no_grad()
def test_cat_merge_is_the_weighted_sum_and_switching_is_exact(tmp_path, tiny_model_dir):
    one = make_adapter(tiny_model_dir, tmp_path / "a", seed=1)
    two = make_adapter(tiny_model_dir, tmp_path / "b", seed=2)
    d1, d2 = delta(one, "default"), delta(two, "default")
    ids = torch.tensor([[5, 6, 7, 8]])
    ref1, ref2 = one(ids).logits, two(ids).logits

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = load_adapters(base, {"arithmetic": tmp_path / "a", "reverse": tmp_path / "b"})
    model.set_adapter("arithmetic")
    assert torch.allclose(model(ids).logits, ref1, atol=1e-5)
    model.set_adapter("reverse")
    assert torch.allclose(model(ids).logits, ref2, atol=1e-5)

    merged = add_merge(model, ["arithmetic", "reverse"], [0.3, 0.7], "cat")
    assert torch.allclose(delta(model, merged), 0.3 * d1 + 0.7 * d2, atol=1e-6)


def test_compare_scores_every_variant_on_every_task(tmp_path, tiny_model_dir):
    make_adapter(tiny_model_dir, tmp_path / "a", seed=1)
    make_adapter(tiny_model_dir, tmp_path / "b", seed=2)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = load_adapters(base, {"arithmetic": tmp_path / "a", "reverse": tmp_path / "b"})
    tokenizer = load_tokenizer(str(tiny_model_dir))
    tasks = ["arithmetic", "reverse"]
    results = compare(model, tokenizer, tasks, combinations=["cat"], limit=8, batch_size=8)
    assert list(results) == [BASE, "arithmetic", "reverse", "merge_cat", ROUTED]
    assert all(set(scores) == set(tasks) for scores in results.values())
    assert results[ROUTED] == {
        "arithmetic": results["arithmetic"]["arithmetic"],
        "reverse": results["reverse"]["reverse"],
    }
    assert all(0.0 <= v <= 1.0 for scores in results.values() for v in scores.values())
    table = to_markdown(results, tasks)
    assert table.count("\n| ") == 5 and "| mean |" in table


@torch.no_grad()
def test_arrow_routing_over_one_expert_is_that_expert(tmp_path, tiny_model_dir):
    """Arrow mixes the top-k experts by a softmax of their alignments: with one expert the weight
    is 1 and the model is that LoRA exactly."""
    from tunelab.workflows.multi_adapter import arrow_model

    one = make_adapter(tiny_model_dir, tmp_path / "a", seed=1)
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    routed = arrow_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), {"arithmetic": tmp_path / "a"})
    torch.testing.assert_close(routed(ids).logits, one(ids).logits, atol=1e-5, rtol=1e-4)


@torch.no_grad()
def test_arrow_top1_over_two_experts_differs_from_each_and_from_their_sum(tmp_path, tiny_model_dir):
    """Per token one expert: the output is neither expert alone everywhere nor the merged sum."""
    from tunelab.workflows.multi_adapter import add_rows, arrow_model

    one = make_adapter(tiny_model_dir, tmp_path / "a", seed=1)
    two = make_adapter(tiny_model_dir, tmp_path / "b", seed=2)
    paths = {"arithmetic": tmp_path / "a", "reverse": tmp_path / "b"}
    routed = arrow_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), paths, top_k=1)
    ids = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12]])
    out = routed(ids).logits
    both = load_adapters(AutoModelForCausalLM.from_pretrained(tiny_model_dir), paths)
    both.set_adapter(add_merge(both, list(paths), [1.0, 1.0], "cat"))
    for other in (one(ids).logits, two(ids).logits, both(ids).logits):
        assert (out - other).abs().max() > 1e-4
    tokenizer = load_tokenizer(str(tiny_model_dir))
    rows = add_rows({}, {"arrow": routed}, tokenizer, ["arithmetic"], limit=4, batch_size=4)
    assert set(rows) == {"arrow"} and 0.0 <= rows["arrow"]["arithmetic"] <= 1.0


def test_over_seeds_gives_the_t_interval_of_each_cell_and_of_the_task_mean():
    import numpy as np
    import pytest
    from scipy import stats

    from tunelab.core.config import ConfigError
    from tunelab.workflows.multi_adapter import over_seeds, seeds_markdown

    runs = [
        {"a": {"x": 0.1, "y": 0.5}, "b": {"x": 0.0, "y": 1.0}},
        {"a": {"x": 0.3, "y": 0.7}, "b": {"x": 0.0, "y": 0.9}},
        {"a": {"x": 0.2, "y": 0.9}, "b": {"x": 0.0, "y": 0.8}},
    ]
    summary = over_seeds(runs, ["x", "y"])
    for variant, column, values in [("a", "x", [0.1, 0.3, 0.2]), ("a", "mean", [0.3, 0.5, 0.55])]:
        low, high = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
        iv = summary[variant][column]
        assert iv.n == 3 and iv.mean == pytest.approx(np.mean(values))
        assert iv.half_width == pytest.approx((high - low) / 2)
    assert summary["b"]["x"].half_width == 0.0
    table = seeds_markdown(summary, ["x", "y"])  # bold: best mean per column (a tie bolds both)
    assert "| b | 0.000 ± 0.000 | **0.900 ± 0.248** | **0.450 ± 0.124** |" in table
    with pytest.raises(ConfigError, match=r"\['c'\] are not in every seed"):
        over_seeds([*runs, {**runs[0], "c": {"x": 0.0, "y": 0.0}}], ["x", "y"])
