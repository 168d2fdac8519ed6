"""Memory tuning: the tiny world's fact-recall task and the memory-experts adapter.

Numbers are checked against hand counts from the tiny base's config.json and against a loop over
the experts written here, never against the adapter's own einsums.
"""

from __future__ import annotations

import math
import re
from functools import cache

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from transformers import AutoConfig

from tests.conftest import ROOT, compose_with
from tests.unit.adapter_helpers import adapted_tiny
from tunelab.adapters.base import ExportError, build_adapter, count_parameters
from tunelab.adapters.memory_experts import MemoryExpertsLinear
from tunelab.world import asset_path, facts, tasks
from tunelab.world.records import chat_records

PRESET = ROOT / "conf" / "comparison" / "memory_tuning.yaml"
SQUARE = ("q_proj", "k_proj", "v_proj", "o_proj")


# ---------- the task ----------


def test_fact_splits_are_deterministic_and_sized():
    for split in tasks.SPLITS:
        assert tasks.load_split("facts", split) == tasks.load_split("facts", split)
    for split in ("validation", "test"):  # every fact asked in each of the split's two phrasings
        assert {len(t) for t in facts.QUERY_TEMPLATES[split].values()} == {2}
        assert len(tasks.load_split("facts", split)) == facts.N_ENTITIES * len(facts.VALUES) * 2
    assert len(tasks.load_split("facts", "fit")) == sum(
        facts.N_ENTITIES * len(t) for t in facts.TRAIN_TEMPLATES.values()
    )
    names = facts.entity_names()
    assert len(set(names)) == facts.N_ENTITIES
    assert all(re.fullmatch(r"[a-z]{4,5}", n) for n in names)


def test_queries_ask_about_trained_facts_in_phrasings_never_trained():
    fit = tasks.load_split("facts", "fit")
    trained = {(ex.raw_prompt, ex.answer) for ex in fit}  # raw_prompt is "<entity> <relation>: "
    fit_text = "\n".join(m["content"] for r in chat_records("facts", "fit", len(fit)) for m in r["messages"])
    for split in ("validation", "test"):
        for ex in tasks.load_split("facts", split):
            assert (ex.raw_prompt, ex.answer) in trained  # the fact itself was trained
            assert ex.prompt not in fit_text  # the question never appears verbatim in training
    val = {ex.prompt for ex in tasks.load_split("facts", "validation")}
    assert not val & {ex.prompt for ex in tasks.load_split("facts", "test")}
    # each entity has one value per relation, and every value is from the relation's list
    values: dict[tuple[str, str], set[str]] = {}
    for ex in fit:
        entity, relation = ex.raw_prompt.rstrip(": ").split(" ")
        values.setdefault((entity, relation), set()).add(ex.answer)
        assert ex.answer in facts.VALUES[relation]
    assert all(len(v) == 1 for v in values.values())


# ---------- the adapter ----------


@cache
def preset_arm_config(arm: str):
    """The training config of one arm of conf/comparison/memory_tuning.yaml (base + arm overrides),
    with test-sized data."""
    preset = OmegaConf.load(PRESET)
    return compose_with(
        [*preset.base, *preset.arms[arm], "eval=none", "data.train.size=32", "data.batch_size=8"]
    )


def hand_count(arm: str) -> int:
    """Trainable parameters from config.json: memory experts K*r*(d+d) + K*d per square layer;
    LoRA of rank R: R*(d+d) per layer; four square layers (q, k, v, o) per block."""
    c = AutoConfig.from_pretrained(asset_path("tiny-llama"))
    d = c.hidden_size
    assert c.num_key_value_heads * (d // c.num_attention_heads) == d  # k, v square too
    layers = c.num_hidden_layers * len(SQUARE)
    adapter = preset_arm_config(arm).adapter
    if arm == "memory_experts":
        k, r = adapter.experts, adapter.expert_rank
        return layers * (k * r * 2 * d + k * d)
    return layers * adapter.peft_config.r * 2 * d


@cache
def trained(steps: int = 6):
    """memory_experts on the tiny base, `steps` AdamW steps on one fact batch; (built, batch, losses)."""
    built = adapted_tiny(preset_arm_config("memory_experts"))
    batch = next(iter(built.data.train_dataloader()))
    params = [p for p in built.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2)
    losses = []
    for _ in range(steps):
        loss = built.objective(built.model, batch).loss
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return built, batch, losses


def test_equal_parameter_counts_match_the_hand_count():
    counts = {
        arm: count_parameters(adapted_tiny(preset_arm_config(arm)).model)[0]
        for arm in ("memory_experts", "lora")
    }
    # 4 blocks x 4 layers x (8 experts x rank 1 x (192 + 192) + 8 x 192) = 16 x 4,608
    assert counts["memory_experts"] == hand_count("memory_experts") == 73_728
    assert counts["lora"] == hand_count("lora") == counts["memory_experts"]


def test_loss_falls_and_only_the_experts_and_router_train():
    built, _, losses = trained()
    assert losses[-1] < losses[0] - 0.5, losses
    names = {n for n, p in built.model.named_parameters() if p.requires_grad}
    assert names and all(re.search(r"\.(lora_A|lora_B|router\.weight)$", n) for n in names)


def test_router_gets_gradients_in_every_layer():
    built, batch, _ = trained()  # after a few steps B != 0, so the gate's choice matters to the loss
    built.model.zero_grad()
    built.objective(built.model, batch).loss.backward()
    layers = [m for m in built.model.modules() if isinstance(m, MemoryExpertsLinear)]
    assert len(layers) == 4 * len(SQUARE)
    for layer in layers:
        assert layer.router.weight.grad is not None and layer.router.weight.grad.abs().sum() > 0


def test_layer_output_equals_a_loop_over_the_chosen_experts():
    built, _, _ = trained()
    layer = next(m for m in built.model.modules() if isinstance(m, MemoryExpertsLinear))
    x = torch.randn(5, layer.base_layer.in_features)
    expected = []
    for token in x:
        logits = token @ layer.router.weight.T
        chosen = sorted(range(len(logits)), key=lambda k: -logits[k])[: layer.top_k]
        norm = sum(math.exp(logits[k]) for k in chosen)
        y = layer.base_layer.weight @ token
        for k in chosen:
            y = y + layer.scaling * math.exp(logits[k]) / norm * (layer.lora_B[k] @ (layer.lora_A[k] @ token))
        expected.append(y)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), torch.stack(expected).detach(), atol=1e-5, rtol=1e-4)
        assert ((layer.gates(x) > 0).sum(-1) == layer.top_k).all()


def test_save_reload_same_logits_and_merge_refused(tmp_path):
    built, batch, _ = trained()
    cfg = preset_arm_config("memory_experts")
    artifact = built.adapter.save(built.model, tmp_path)
    fresh = build_adapter(cfg.adapter)
    reloaded = fresh.load(instantiate(cfg.model).model, artifact)
    built.model.eval()
    with torch.no_grad():
        ids = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        torch.testing.assert_close(reloaded(**ids).logits, built.model(**ids).logits, atol=1e-5, rtol=1e-4)
    with pytest.raises(ExportError, match=r"adapter=memory_experts cannot be merged"):
        fresh.export(instantiate(cfg.model).model, artifact)
