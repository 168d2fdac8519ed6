"""Shared test helpers: run train.py as a user would, and read what a run wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# A test-sized run: a few steps on a small slice, tiny evals.
SMALL_RUN = [
    "trainer.max_steps=12",
    "data.train.size=96",
    "data.batch_size=8",
    "eval.tasks.arithmetic.limit=16",
    "eval.tasks.reverse.limit=16",
    "checkpoint_every=4",
]


def run_train(
    args: list[str], cwd: Path = ROOT, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`python train.py ARGS` in a subprocess; fails the test with its output if it fails."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "1", **(env or {})}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and proc.returncode != 0:
        tail = f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        pytest.fail(f"train.py {' '.join(args)} exited {proc.returncode}:\n{tail}")
    return proc


def read_metrics(run_dir: Path) -> dict:
    """The metrics.json of a run directory."""
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """The shipped tiny base model directory."""
    from tunelab.world import asset_path

    return asset_path("tiny-llama")
