"""objective=classify through train.py with LoRA: accuracy in metrics.json, an HF classifier saved."""

from __future__ import annotations

import pytest
from transformers import AutoModelForSequenceClassification

from tests.conftest import SMALL_RUN, read_metrics, run_train

pytestmark = pytest.mark.slow


def test_classify_with_lora_reports_accuracy_and_exports_a_classifier(tmp_path):
    run_dir = tmp_path / "run"
    small = [a for a in SMALL_RUN if "eval.tasks" not in a]
    evals = ["~eval.tasks.arithmetic", "~eval.tasks.reverse", "eval.tasks.sum_check.records.size=20"]
    run_train(["objective=classify", "adapter=lora", *small, *evals, f"hydra.run.dir={run_dir}"])
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "completed"
    assert 0.0 <= metrics["eval/sum_check/accuracy"] <= 1.0 and metrics["eval/sum_check/n"] == 20
    assert "baseline/sum_check/accuracy" not in metrics  # no head before training
    assert "train/accuracy" in metrics
    model = AutoModelForSequenceClassification.from_pretrained(run_dir / "classifier")
    assert model.config.num_labels == 2
