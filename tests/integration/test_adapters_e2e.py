"""The adapter group through the user's commands: train.py, then tunelab export."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from tests.conftest import read_metrics, run_train

pytestmark = pytest.mark.slow

TINY = ["trainer.max_steps=4", "data.train.size=32", "data.batch_size=8", "eval=none", "rank=4"]


def test_dora_run_measures_bytes_and_exports_a_standalone_model(tmp_path, tiny_model_dir):
    run_dir = tmp_path / "run"
    run_train(["adapter=dora", *TINY, f"hydra.run.dir={run_dir}"])
    m = read_metrics(run_dir)
    assert m["status"] == "completed" and m["adapter"] == "dora"
    # AdamW holds two fp32 moments per trainable weight (plus a step counter per tensor).
    assert m["optimizer_state_bytes"] >= 8 * m["trainable_params"]
    assert m["grad_bytes"] == 4 * m["trainable_params"]
    assert m["weight_bytes"] == 4 * m["total_params"]

    proc = subprocess.run(
        [sys.executable, "-m", "tunelab", "export", f"run_dir={run_dir}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    standalone = AutoModelForCausalLM.from_pretrained(run_dir / "export").eval()
    adapted = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir), run_dir / "adapter"
    )
    ids = torch.tensor([[5, 40, 41, 42, 2]])
    with torch.no_grad():
        torch.testing.assert_close(standalone(ids).logits, adapted.eval()(ids).logits, atol=1e-4, rtol=1e-4)


def test_senseless_combination_stops_before_training_naming_the_keys(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_train(["adapter=prompt", "target_modules=[q_proj]", f"hydra.run.dir={run_dir}"], check=False)
    assert proc.returncode != 0
    assert "ConfigError: adapter=prompt with target_modules=['q_proj']" in proc.stderr
    m = read_metrics(run_dir)
    assert m["status"] == "failed" and "train_steps" not in m
