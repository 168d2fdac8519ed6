"""Kill a run with SIGKILL, resume it on the same directory: every later step's loss is bitwise the
loss of the run that was never killed (CPU, same seed)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, read_metrics, run_train

pytestmark = pytest.mark.slow

# 40 examples in batches of 8: an epoch is 5 steps, so every case crosses epoch boundaries, and
# the cosine schedule's 10 warmup steps cover most of the run.
BASE = [
    "eval=none", "data.train.size=40", "data.batch_size=8", "trainer.max_steps=12",
    "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false", "checkpoint_every=4",
]  # fmt: skip
# Bitwise equality needs the same float reduction order: every run of a comparison uses one thread
# (with another thread count, LAPACK's SVD in GaLore's projection rounds differently).
SAME_THREADS = {"OMP_NUM_THREADS": "1"}
PREFERENCE = ["objective=dpo", "data.train.size=40", "data.heldout.size=8", "data.batch_size=8"]

CASES = {
    # LoRA SFT killed at step 3, resumed from step 2: inside the LR warmup, mid-epoch, and with
    # dropout on, so the resumed run must also draw the same dropout masks (RNG restored)
    "lora_sft_in_warmup": (["checkpoint_every=2", "dropout=0.1"], 3),
    "full": (["adapter=full"], 7),
    "qlora": (["adapter=qlora"], 7),
    "galore": (["adapter=galore", "adapter.update_proj_gap=3"], 7),  # a projection refresh at 6
    "lisa": (["adapter=lisa", "adapter.interval=3"], 7),  # the sampled blocks of the period restored
    # rank budget reallocated every step from 1 to 9 (tinit 1, tfinal 2 of 12): the allocator's
    # importance averages live in the adapter's callback state and must come back
    "adalora": (["adapter=adalora", "adapter.warmup_fraction=0.1", "adapter.final_fraction=0.2"], 7),
    "dpo": (PREFERENCE, 6),
}


def train_command(run_dir: Path, args: list[str]) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), f"hydra.run.dir={run_dir}", *BASE, *args]


def step_losses(run_dir: Path) -> dict[int, str]:
    """train/loss by logged step, as written (exact decimal text of the float)."""
    with (run_dir / "metrics.csv").open() as fh:
        return {int(r["step"]): r["train/loss"] for r in csv.DictReader(fh) if r.get("train/loss")}


def run_both(reference: list[str], killed: list[str]) -> subprocess.CompletedProcess:
    """The never-killed run and the run to kill, side by side (two cores); returns the killed one's."""
    env = {**os.environ, **SAME_THREADS, "HYDRA_FULL_ERROR": "1"}
    procs = [subprocess.Popen(c, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in (reference, killed)]  # fmt: skip
    outs = [p.communicate(timeout=600) for p in procs]
    if procs[0].returncode != 0:
        pytest.fail(f"reference run failed:\n{outs[0][1][-4000:]}")
    return subprocess.CompletedProcess(killed, procs[1].returncode, *outs[1])


@pytest.mark.parametrize("case", CASES)
def test_killed_and_resumed_run_matches_the_uninterrupted_one(tmp_path, case):
    args, kill_at = CASES[case]
    reference, run = tmp_path / "reference", tmp_path / "run"
    killed = run_both(
        train_command(reference, args), train_command(run, [*args, f"faults.kill_at_step={kill_at}"])
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert read_metrics(run)["status"] == "running"  # a killed run is never marked complete

    run_train([f"hydra.run.dir={run}", *BASE, *args, "resume=true"], env=SAME_THREADS)
    metrics = read_metrics(run)
    assert metrics["status"] == "completed" and metrics["train_steps"] == 12
    checkpoint_every = 2 if case == "lora_sft_in_warmup" else 4
    assert metrics["resumed_from_step"] == kill_at // checkpoint_every * checkpoint_every

    expected, resumed = step_losses(reference), step_losses(run)
    # metrics.csv keeps the rows before the resume point: the whole curve, every step once
    assert sorted(resumed) == sorted(expected) == list(range(12))
    diverged = [s for s in sorted(resumed) if resumed[s] != expected[s]]
    assert diverged == [], f"first divergent step {diverged[:1]}: {resumed} vs {expected}"
    # metrics.json's totals cover the whole run, not just the part after the resume
    ref_metrics = read_metrics(reference)
    for key in ("train_loss_initial", "train_loss_final", "train_tokens"):
        assert metrics[key] == ref_metrics[key], key
    assert metrics["train_tokens_per_sec"] > 0


def test_kill_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path):
    reference, run = tmp_path / "reference", tmp_path / "run"
    killed = run_both(
        train_command(reference, []), train_command(run, ["faults.kill_while_saving_at_step=8"])
    )
    assert killed.returncode == -signal.SIGKILL
    ckpt_dir = run / "checkpoints"
    half_written = [p.name for p in ckpt_dir.glob("*.tmp")]
    assert half_written == ["epoch=1-step=8.ckpt.tmp"]  # the step-8 checkpoint, never renamed
    assert torch.load(ckpt_dir / "last.ckpt", weights_only=True)["global_step"] == 4

    run_train([f"hydra.run.dir={run}", *BASE, "resume=true"], env=SAME_THREADS)
    assert read_metrics(run)["resumed_from_step"] == 4
    expected, resumed = step_losses(reference), step_losses(run)
    assert resumed == expected and len(resumed) == 12


def test_resume_with_a_changed_config_is_refused_naming_the_keys(tmp_path):
    run = tmp_path / "run"
    run_train([f"hydra.run.dir={run}", *BASE, "trainer.max_steps=4"])
    config_before = (run / "config.yaml").read_text()
    proc = run_train(
        [f"hydra.run.dir={run}", *BASE, "trainer.max_steps=4", "rank=16", "resume=true"], check=False
    )
    assert proc.returncode != 0
    assert "the config changed since" in proc.stderr and "rank: 8 -> 16" in proc.stderr
    assert "adapter.peft_config.r: 8 -> 16" in proc.stderr and "resume_force=true" in proc.stderr
    assert (run / "config.yaml").read_text() == config_before  # still describes the checkpoint
    assert read_metrics(run)["status"] == "failed"


def write_chats(path: Path, answers: list[str]) -> None:
    lines = [json.dumps({"prompt": f"What is {i}+1?", "completion": a}) for i, a in enumerate(answers)]
    path.write_text("\n".join(lines) + "\n")


def test_resume_with_changed_training_data_is_refused(tmp_path):
    run, data_file = tmp_path / "run", tmp_path / "chats.jsonl"
    args = [
        f"hydra.run.dir={run}",
        *[a for a in BASE if not a.startswith("data.train.size")],  # a file has no size key
        "data=jsonl",
        f"data.train.path={data_file}",
        "trainer.max_steps=4",
    ]
    write_chats(data_file, [str(i + 1) for i in range(40)])
    run_train(args)
    write_chats(data_file, [str(i + 2) for i in range(40)])  # same file name and config, new answers
    proc = run_train([*args, "resume=true"], check=False)
    assert proc.returncode != 0
    assert "the training data changed since the checkpoint was written" in proc.stderr
    assert read_metrics(run)["status"] == "failed"

    proc = run_train([*args, "resume=true", "resume_force=true"], check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]  # forced: the user said so explicitly


def test_preemption_signal_checkpoints_and_the_rerun_resumes_by_itself(tmp_path):
    reference, run = tmp_path / "reference", tmp_path / "run"
    env = {**os.environ, **SAME_THREADS}
    args = ["trainer.max_steps=40", "preemption.signal=SIGUSR1", "resume=auto"]
    ref = subprocess.Popen(train_command(reference, args), env=env, cwd=ROOT, stderr=subprocess.PIPE)
    proc = subprocess.Popen(train_command(run, args), env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (run / "checkpoints" / "last.ckpt").exists():  # training is under way
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    proc.send_signal(signal.SIGUSR1)
    _, stderr = proc.communicate(timeout=300)
    ref.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    metrics = read_metrics(run)
    assert metrics["status"] == "preempted" and metrics["requeue"] is None  # not under SLURM here
    stopped_at = metrics["preempted_at_step"]
    assert 4 <= stopped_at < 40
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == stopped_at

    run_train([f"hydra.run.dir={run}", *BASE, *args], env=SAME_THREADS)  # the requeued job
    metrics = read_metrics(run)
    assert metrics["status"] == "completed" and metrics["resumed_from_step"] == stopped_at
    expected, resumed = step_losses(reference), step_losses(run)
    assert resumed == expected
