"""Faults through train.py: SIGTERM, a second process on the run directory, a moved run directory
with a damaged last checkpoint and no config.yaml. Each must keep every record."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, read_metrics, run_train
from tests.integration.test_resume_exact import BASE, train_command

pytestmark = pytest.mark.slow


def wait_for(path: Path, proc: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_sigterm_is_a_failure_and_a_second_process_is_refused(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    proc = subprocess.Popen(train_command(run, ["trainer.max_steps=400"]), env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    wait_for(run / "metrics.json", proc)
    second = run_train([f"hydra.run.dir={run}", *BASE], check=False, env={"HYDRA_FULL_ERROR": "0"})
    assert second.returncode == 2
    assert f"another tunelab process (pid {proc.pid}) is running in this run directory" in second.stderr
    assert read_metrics(run)["status"] == "running"  # the first run's record, untouched

    wait_for(run / "checkpoints" / "last.ckpt", proc)  # training is under way
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=300)
    assert proc.returncode == 143  # 128 + SIGTERM, not 0
    metrics = read_metrics(run)
    assert metrics["status"] == "failed" and metrics["error"].startswith("Terminated: ")


def test_moved_run_dir_with_a_damaged_checkpoint_and_no_config_yaml(tmp_path):
    first, moved = tmp_path / "first", tmp_path / "moved"
    killed = subprocess.run(train_command(first, ["faults.kill_at_step=9"]), cwd=ROOT, capture_output=True)
    assert killed.returncode == -signal.SIGKILL
    shutil.move(first, moved)
    (moved / "config.yaml").unlink()
    last = moved / "checkpoints" / "last.ckpt"  # step 8; last.ckpt.prev holds step 4
    data = bytearray(last.read_bytes())
    data[len(data) // 2] ^= 0x01
    last.write_bytes(bytes(data))

    changed = run_train([f"hydra.run.dir={moved}", *BASE, "resume=true", "rank=16"], check=False)
    assert changed.returncode == 2
    assert "last.ckpt fails its sha256 check; resuming from" in changed.stderr
    assert "the config stored in" in changed.stderr and "rank: 8 -> 16" in changed.stderr

    run_train([f"hydra.run.dir={moved}", *BASE, "resume=true"])
    metrics = read_metrics(moved)
    assert metrics["status"] == "completed" and metrics["resumed_from_step"] == 4
    names = sorted(p.name for p in (moved / "checkpoints").iterdir())
    assert not any("-v1" in n for n in names), names  # a moved dir overwrites last.ckpt
    assert torch.load(last, weights_only=True)["global_step"] == 12
    with (moved / "metrics.csv").open() as fh:
        steps = [int(r["step"]) for r in csv.DictReader(fh) if r.get("train/loss")]
    assert steps == list(range(12))  # rows before the resume point kept, repeated steps once
