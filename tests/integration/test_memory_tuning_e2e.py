"""Memory tuning end to end: train.py with adapter=memory_experts on the facts task, scored on
held-out fact questions and the reverse forgetting probe."""

from __future__ import annotations

import pytest

from tests.conftest import read_metrics, run_train
from tests.unit.test_memory_tuning import hand_count

pytestmark = pytest.mark.slow


def test_memory_experts_run_on_facts_end_to_end(tmp_path):
    run_train([
        "adapter=memory_experts", "data=facts", "eval=facts", "trainer.max_steps=3", "data.train.size=24",
        "data.batch_size=8", "eval.tasks.facts.limit=8", "eval.tasks.reverse.limit=8",
        "eval.tasks.heldout.n_docs=2", "eval.batch_size=8", f"hydra.run.dir={tmp_path}",
    ])  # fmt: skip
    m = read_metrics(tmp_path)
    assert m["status"] == "completed" and m["adapter"] == "memory_experts"
    assert m["trainable_params"] == hand_count("memory_experts")
    assert {"eval/facts/exact_match", "baseline/facts/exact_match", "delta/reverse/exact_match"} <= set(m)
