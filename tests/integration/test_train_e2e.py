"""train.py end to end on test-sized configs: metrics, artifacts, sweeps, resume."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoConfig, AutoModelForCausalLM

from tests.conftest import SMALL_RUN, read_metrics, run_train

pytestmark = pytest.mark.slow

REQUIRED_KEYS = {
    "status", "objective", "adapter", "seed", "trainable_params", "total_params", "train_steps",
    "train_tokens", "train_loss_initial", "train_loss_final", "train_tokens_per_sec",
    "peak_memory_bytes", "wall_seconds", "baseline/arithmetic/exact_match",
    "eval/arithmetic/exact_match", "baseline/reverse/exact_match", "eval/reverse/exact_match",
}  # fmt: skip


def lora_param_count(model_dir: Path, rank: int) -> int:
    """r * (d_in + d_out) summed over every linear layer of the Llama blocks."""
    c = AutoConfig.from_pretrained(model_dir)
    head_dim = c.hidden_size // c.num_attention_heads
    d, kv, ff = c.hidden_size, c.num_key_value_heads * head_dim, c.intermediate_size
    shapes = [(d, d), (d, kv), (d, kv), (d, d), (d, ff), (d, ff), (ff, d)]  # q k v o gate up down
    return c.num_hidden_layers * sum(rank * (i + o) for i, o in shapes)


def test_lora_sft_run_writes_everything(tmp_path, tiny_model_dir):
    run_dir = tmp_path / "run"
    proc = run_train([*SMALL_RUN, f"hydra.run.dir={run_dir}", "rank=4", "trainer.enable_progress_bar=true"])
    m = read_metrics(run_dir)
    assert m.keys() >= REQUIRED_KEYS
    console = proc.stdout + proc.stderr
    assert f"-> {run_dir}" in console and "train (12 steps" in console  # what runs, the bar
    for noise in ("gemm_4bit_forward", "litlogger", "GPU available", "Epoch 0/-2", "Loading weights"):
        assert noise not in console, noise
    assert m["status"] == "completed" and m["objective"] == "sft" and m["adapter"] == "lora"
    assert m["train_steps"] == 12
    assert m["train_loss_final"] < m["train_loss_initial"]
    assert m["trainable_params"] == lora_param_count(tiny_model_dir, rank=4)
    assert m["total_params"] > m["trainable_params"] > 0
    assert (run_dir / "config.yaml").read_text().count("r: 4") == 1
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "metrics.csv").is_file()

    # The adapter reloads through peft onto the base and gives the trained model's outputs.
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = PeftModel.from_pretrained(base, run_dir / "adapter").eval()
    ids = torch.tensor([[5, 40, 41, 42, 2]])
    with torch.no_grad():
        adapted = model(input_ids=ids).logits
        with model.disable_adapter():
            plain = model(input_ids=ids).logits
    assert not torch.allclose(adapted, plain)  # training changed the adapter weights


def test_rank_sweep_headline_syntax_gives_three_runs(tmp_path):
    sweep_dir = tmp_path / "sweep"
    # Overrides before and after -m: the headline example's shape, which hydra-core 1.3 rejects.
    run_train(
        [
            "adapter=lora",
            "objective=sft",
            "-m",
            "rank=2,4,8",
            f"hydra.sweep.dir={sweep_dir}",
            "trainer.max_steps=2",
            "data.train.size=16",
            "eval=none",
        ]
    )
    run_dirs = sorted(p.parent for p in sweep_dir.glob("*/metrics.json"))
    assert len(run_dirs) == 3
    params = [read_metrics(d)["trainable_params"] for d in run_dirs]
    assert all(read_metrics(d)["status"] == "completed" for d in run_dirs)
    assert params[1] == 2 * params[0] and params[2] == 4 * params[0]

    # The table's rank plot draws one line (lora) over the three ranks.
    from tunelab.results.collect import collect_runs, group_rows
    from tunelab.results.plots import plot_metric_vs_rank

    png = tmp_path / "rank.png"
    assert plot_metric_vs_rank(group_rows(collect_runs(sweep_dir)), "trainable_params", png)
    assert png.stat().st_size > 1000


def _logged_steps(run_dir: Path) -> list[int]:
    with (run_dir / "metrics.csv").open() as fh:
        return [int(row["step"]) for row in csv.DictReader(fh) if row.get("train/loss")]


def test_resume_continues_from_last_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    common = [f"hydra.run.dir={run_dir}", "eval=none", "data.train.size=64", "data.batch_size=8"]
    common += ["checkpoint_every=4", "trainer.log_every_n_steps=1"]
    run_train([*common, "trainer.max_steps=8"])
    first = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert first["global_step"] == 8

    # a longer schedule than the checkpoint was written with is a config change: forced explicitly
    run_train([*common, "trainer.max_steps=12", "resume=true", "resume_force=true"])
    m = read_metrics(run_dir)
    assert m["status"] == "completed" and m["train_steps"] == 12
    assert m["resumed_from_step"] == 8  # the resumed process started at step 8, not 0
    assert _logged_steps(run_dir) == list(range(12))  # metrics.csv kept steps 0-7, then 8-11
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 12
    adam_steps = {int(s["step"]) for s in last["optimizer_states"][0]["state"].values()}
    assert adam_steps == {12}  # Adam's moments carried over: 8 before the restart + 4 after


def test_resume_without_checkpoint_fails_clearly(tmp_path):
    proc = run_train([f"hydra.run.dir={tmp_path / 'r'}", "resume=true", "eval=none"], check=False)
    assert proc.returncode != 0
    assert "resume=True: no checkpoint at" in proc.stderr
    assert read_metrics(tmp_path / "r")["status"] == "failed"
