"""Mixtures of LoRA experts end to end: per-task LoRA runs, an X-LoRA gate trained over them with
train.py, then the comparison script with Arrow routing and the X-LoRA run as extra rows."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, read_metrics, run_train

pytestmark = pytest.mark.slow
TINY = ["trainer.max_steps=4", "data.train.size=16", "data.batch_size=8"]


def test_experts_then_xlora_router_then_comparison(tmp_path):
    experts = {}
    for task in ("arithmetic", "reverse"):
        experts[task] = tmp_path / task
        run_train([f"data.train.task={task}", "eval=none", *TINY, f"hydra.run.dir={experts[task]}"])
    router = tmp_path / "xlora"
    run_train([
        "adapter=xlora", "data=multitask", "data.train.size=8", "trainer.max_steps=4", "data.batch_size=8",
        "eval.tasks.arithmetic.limit=4", "eval.tasks.reverse.limit=4", f"hydra.run.dir={router}",
        *(f"+adapter.experts.{t}={d}" for t, d in experts.items()),
    ])  # fmt: skip
    m = read_metrics(router)
    assert m["status"] == "completed" and m["adapter"] == "xlora"
    assert m["trainable_params"] == 192 * 2 + 2  # the gate: hidden 192 -> 2 experts, + bias
    assert (router / "adapter" / "xlora_gate.safetensors").is_file()
    out = tmp_path / "table"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "combine_adapters.py"),
         *(f"{t}={d}" for t, d in experts.items()), "--arrow", "1", "--xlora", str(router),
         "--limit", "4", "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    scores = json.loads((out / "results.json").read_text())["scores"]
    assert {"arrow (top-1)", "x-lora (learned gate)", "arithmetic", "reverse"} <= set(scores)
    assert all(set(row) == {"arithmetic", "reverse"} for row in scores.values())
