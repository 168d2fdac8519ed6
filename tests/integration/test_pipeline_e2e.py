"""Pipeline end to end: weights handed from stage to stage (by hash), pruning as a stage, and a
failed stage stopping the pipeline with earlier outputs kept."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from tests.conftest import SMALL_RUN

pytestmark = pytest.mark.slow

# Shared by every stage (they come last and win): so no trainer.max_steps here, each stage sets its own.
SMALL = [a for a in SMALL_RUN if not a.startswith(("trainer.max_steps", "eval.tasks", "checkpoint_every"))]
SMALL += ["eval.tasks.arithmetic.limit=4", "eval.tasks.reverse.limit=4", "checkpoint_every=50"]


def overrides_arg(overrides: list[str]) -> str:
    """`overrides=[a=1,b=2]`: the pipeline verb's list of overrides for every stage."""
    return "overrides=[" + ",".join(overrides) + "]"


def weights_hash(directory) -> str:
    """sha256 over a model directory's tensors (names and bytes, in name order)."""
    tensors = load_file(directory / "model.safetensors")
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].contiguous().numpy().tobytes())
    return digest.hexdigest()


def test_pipeline_hands_weights_on_prunes_and_stops_at_a_failed_stage(tmp_path):
    spec = tmp_path / "three.yaml"
    spec.write_text(
        "stages:\n"
        "  - {name: sft, overrides: [adapter=lora, trainer.max_steps=3]}\n"
        # 0 steps of full fine-tuning: its saved model/ is exactly the model the stage loaded.
        "  - {name: prune, overrides: [adapter=full, trainer.max_steps=0, prune=structured,"
        " prune.drop_layers=1]}\n"
        "  - {name: broken, overrides: [adapter=no_such_adapter]}\n"
    )
    out = tmp_path / "pipe"
    proc = subprocess.run(
        [sys.executable, "-m", "tunelab", "pipeline", f"pipeline={spec}", f"out={out}", overrides_arg(SMALL)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "stage 3 'broken' failed" in proc.stderr and "no_such_adapter" in proc.stderr

    records = json.loads((out / "pipeline.json").read_text())["stages"]
    assert [r["status"] for r in records] == ["completed", "completed", "failed"]
    stage1, stage2 = out / "1_sft", out / "2_prune"
    # Stage 2 loaded stage 1's merged export: the same tensors, bit for bit.
    assert records[1]["input_model"] == str(stage1 / "export")
    assert weights_hash(stage1 / "export") == weights_hash(stage2 / "model")
    # Stage 2's output is its pruned model, smaller in every pruned dimension, and it generates.
    assert records[1]["output_model"] == str(stage2 / "pruned")
    pruned = AutoModelForCausalLM.from_pretrained(stage2 / "pruned")
    assert pruned.config.num_hidden_layers == 3 and pruned.config.intermediate_size == 384
    assert pruned.model.layers[0].self_attn.q_proj.weight.shape == (128, 192)
    ids = torch.tensor([[5, 6, 7]])
    assert pruned.generate(ids, max_new_tokens=3, do_sample=False).shape == (1, 6)
    metrics = json.loads((stage2 / "metrics.json").read_text())
    assert metrics["prune/params"] < metrics["prune/params_before"]
    assert "pruned/arithmetic/exact_match" in metrics
    # The failed stage left the earlier ones in place.
    assert (stage1 / "metrics.json").is_file() and (stage1 / "export" / "model.safetensors").is_file()
