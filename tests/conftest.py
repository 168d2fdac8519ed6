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


def run_script(
    script: str, args: list[str], cwd: Path = ROOT, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`python SCRIPT ARGS` (a repo-root app: train.py, eval.py, compare.py) in a subprocess.

    With `check`, a non-zero exit fails the test with the tail of its output.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "1", **(env or {})}
    proc = subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and proc.returncode != 0:
        tail = f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        pytest.fail(f"{script} {' '.join(args)} exited {proc.returncode}:\n{tail}")
    return proc


def run_train(
    args: list[str], cwd: Path = ROOT, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`python train.py ARGS` in a subprocess; fails the test with its output if it fails."""
    return run_script("train.py", args, cwd=cwd, check=check, env=env)


def read_metrics(run_dir: Path) -> dict:
    """The metrics.json of a run directory."""
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """The shipped tiny base model directory."""
    from tunelab.world import asset_path

    return asset_path("tiny-llama")


def compose_with(overrides: list[str]):
    """The training config `train.py` would compose from these overrides (no Hydra app needed)."""
    from hydra import compose, initialize_config_dir

    import tunelab  # noqa: F401  (registers the config resolvers)

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def tiny_llama_config(**overrides):
    """A small in-memory Llama shape for unit tests (vocab 64, width 32, 2 layers, GQA 4/2);
    tests pass what they need different."""
    from transformers import LlamaConfig

    shape = dict(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    return LlamaConfig(**(shape | overrides))


# Modules in the order xdist hands them out (`--dist loadfile`): the longest first, so the real-model
# module (minutes, one worker) runs beside the rest instead of after it. Stable: a module keeps
# its own order, and every worker computes the same one.
LONGEST_FIRST = ("tests/real/", "tests/integration/")


def schedule_rank(path: str) -> int:
    """0 for the real-model tests, 1 for the end-to-end ones, 2 for the rest."""
    return next((i for i, part in enumerate(LONGEST_FIRST) if part in path), len(LONGEST_FIRST))


def pytest_configure(config) -> None:
    """One torch thread per xdist worker, and in the runs it spawns, unless OMP_NUM_THREADS is set.

    Two workers with a 2-thread OpenMP team each on a 2-core machine spin against each other: the
    real-model and resume/eval end-to-end files took 5 min 40 s that way and 3 min 59 s with one
    thread per worker (README, "Tests", has the command).
    """
    if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        import torch

        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def pytest_collection_modifyitems(config, items):
    """Longest modules first; tests marked `gpu` skip, with the reason, where no CUDA is visible."""
    import torch

    items.sort(key=lambda item: schedule_rank(item.nodeid))
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (marked gpu); none on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
