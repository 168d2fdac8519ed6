"""Sweeps end to end: failures recorded, a table from a real multirun, determinism, loggers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import read_metrics, run_train

pytestmark = pytest.mark.slow

TINY = [
    "trainer.max_steps=3",
    "trainer.log_every_n_steps=1",
    "data.train.size=24",
    "data.batch_size=8",
    "checkpoint_every=100",
]
TINY_EVAL = ["eval.tasks.arithmetic.limit=8", "eval.tasks.reverse.limit=8"]
TIMING_KEYS = {"wall_seconds", "train_tokens_per_sec", "peak_memory_bytes", "command", "overrides"}


def job_dirs(sweep_dir: Path) -> list[Path]:
    return sorted(p.parent for p in sweep_dir.glob("*/metrics.json"))


def test_failing_job_is_recorded_and_the_sweep_goes_on(tmp_path):
    sweep_dir = tmp_path / "sweep"
    secrets = {"WANDB_API_KEY": "planted-wandb-secret-0123456789abcdef", "HF_TOKEN": "hf_plantedsecret42"}
    proc = run_train(
        ["-m", "lr=-1,0.002", f"hydra.sweep.dir={sweep_dir}", "eval=none", "logger=wandb", *TINY],
        check=False,
        env={**secrets, "WANDB_MODE": "offline"},
    )
    assert proc.returncode != 0  # the sweep's exit code says a job failed
    assert "1 of 2 sweep jobs did not complete" in proc.stderr
    failed, ok = (read_metrics(d) for d in job_dirs(sweep_dir))
    assert failed["status"] == "failed" and "lr=-1: expected a number > 0" in failed["error"]
    assert ok["status"] == "completed" and ok["train_steps"] == 3  # ran after the failure

    written = [p for p in sweep_dir.rglob("*") if p.is_file()]
    assert any("wandb" in p.parts for p in written)  # W&B offline files are among those searched
    leaks = [p for p in written for s in secrets.values() if s.encode() in p.read_bytes()]
    assert leaks == []


def test_seed_sweep_into_a_table_and_rerun_is_identical(tmp_path):
    sweep_dir = tmp_path / "sweep"
    # seed=0 runs last, after other jobs in the same process: a leak of state would show below.
    run_train(["-m", "seed=2,1,0", f"hydra.sweep.dir={sweep_dir}", *TINY, *TINY_EVAL])
    assert len(job_dirs(sweep_dir)) == 3

    from scripts.make_table import main as make_table

    assert make_table([str(sweep_dir), "--out", str(tmp_path / "table")]) == 0
    md = (tmp_path / "table" / "table.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ") and "trainer.max_steps=3" in line]
    assert len(rows) == 1 and rows[0].split(" | ")[1] == "3"  # three seeds, one row
    assert "eval/arithmetic/exact_match" in md
    assert (tmp_path / "table" / "table.tex").read_text().count(r"\toprule") == 1
    assert (tmp_path / "table" / "plots" / "loss_curves.png").stat().st_size > 1000

    # The same config and seed in a fresh process, logging to W&B offline, gives the same metrics.
    single = tmp_path / "single"
    env_key = os.environ.pop("WANDB_API_KEY", None)
    try:
        run_train([f"hydra.run.dir={single}", "seed=0", "logger=wandb", *TINY, *TINY_EVAL])
    finally:
        if env_key is not None:
            os.environ["WANDB_API_KEY"] = env_key
    seed0 = next(d for d in job_dirs(sweep_dir) if read_metrics(d)["seed"] == 0)
    a, b = read_metrics(seed0), read_metrics(single)
    assert {k: v for k, v in a.items() if k not in TIMING_KEYS} == {
        k: v for k, v in b.items() if k not in TIMING_KEYS
    }
    assert list((single / "wandb").glob("offline-run-*")), "W&B offline run directory missing"


def test_optuna_preset_optimises_a_metric(tmp_path):
    sweep_dir = tmp_path / "optuna"
    overrides = ["hparams_search=optuna", "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={sweep_dir}"]
    run_train([*overrides, *TINY, *TINY_EVAL])
    runs = job_dirs(sweep_dir)
    assert len(runs) == 2
    assert all("eval/arithmetic/exact_match" in read_metrics(d) for d in runs)
    best = json.loads(
        json.dumps(__import__("yaml").safe_load((sweep_dir / "optimization_results.yaml").read_text()))
    )
    assert "lr" in best["best_params"] and "rank" in best["best_params"]
