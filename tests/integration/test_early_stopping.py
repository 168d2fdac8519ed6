"""Early stopping on a held-out validation loss, through train.py."""

from __future__ import annotations

import csv

import pytest

from tests.conftest import read_metrics, run_train

pytestmark = pytest.mark.slow

COMMON = [
    "eval=none", "data.train.size=40", "data.batch_size=8", "trainer.max_steps=12",
    "early_stopping=val_loss", "data.val_size=16", "trainer.val_check_interval=2",
    "trainer.enable_progress_bar=false",
]  # fmt: skip


def test_stops_when_val_loss_does_not_improve_by_min_delta(tmp_path):
    # The first check (step 2) sets the best; no later loss can beat it by 10 nats, so with
    # patience 1 the second check (step 4) stops the run.
    run = tmp_path / "run"
    run_train([f"hydra.run.dir={run}", *COMMON, "early_stopping.patience=1", "early_stopping.min_delta=10.0"])
    m = read_metrics(run)
    assert m["status"] == "completed"
    assert m["train_steps"] == 4 and m["early_stopping/stopped_at_step"] == 4
    assert m["train_examples"] == 40 - 16  # the validation examples are held out of training
    with (run / "metrics.csv").open() as fh:
        val_steps = [int(r["step"]) for r in csv.DictReader(fh) if r.get("val/loss")]
    assert len(val_steps) == 2


def test_runs_to_max_steps_while_val_loss_improves_enough(tmp_path):
    run = tmp_path / "run"
    run_train([f"hydra.run.dir={run}", *COMMON, "early_stopping.patience=100"])
    m = read_metrics(run)
    assert m["train_steps"] == 12 and m["early_stopping/stopped_at_step"] is None
    assert m["early_stopping/best_val/loss"] < 10


def test_validation_without_held_out_data_is_a_clear_error(tmp_path):
    run = tmp_path / "run"
    proc = run_train([f"hydra.run.dir={run}", *COMMON, "data.val_size=0"], check=False)
    assert proc.returncode != 0 and "data.val_size=0: hold out some examples" in proc.stderr
    assert "Loading" not in proc.stderr  # refused before the model loads
