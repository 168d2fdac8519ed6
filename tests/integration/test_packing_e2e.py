"""A packed SFT run with chunked log-probs, through train.py as a user would type it."""

from __future__ import annotations

import math

import pytest

from tests.conftest import read_metrics, run_train


@pytest.mark.slow
def test_packed_chunked_sft_run_completes(tmp_path):
    run_dir = tmp_path / "run"
    run_train(
        [
            f"hydra.run.dir={run_dir}",
            "eval=none",
            "data.packing=true",
            "data.max_length=128",
            "data.batch_size=2",
            "data.train.size=64",
            "objective.chunk_size=16",
            "trainer.max_steps=4",
        ]
    )
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "completed"
    assert metrics["train_steps"] == 4
    assert math.isfinite(metrics["train_loss_final"])
    # Packed rows of up to 128 tokens hold several ~25-token examples: far more than 2 rows' worth
    # of one example each.
    assert metrics["train_tokens"] > 4 * 2 * 64
