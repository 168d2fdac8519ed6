"""objective=classify through train.py with LoRA: accuracy in metrics.json, an HF classifier saved."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from tests.conftest import SMALL_RUN, read_metrics, run_train
from tunelab.world.classification import sum_check_records

pytestmark = pytest.mark.slow


def test_classify_with_lora_reports_accuracy_and_exports_a_classifier(tmp_path):
    run_dir = tmp_path / "run"
    small = [a for a in SMALL_RUN if "eval.tasks" not in a]
    evals = ["~eval.tasks.arithmetic", "~eval.tasks.reverse", "eval.tasks.sum_check.records.size=20"]
    run_train(["objective=classify", "adapter=lora", *small, *evals, f"hydra.run.dir={run_dir}"])
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "completed"
    assert metrics["eval/sum_check/n"] == 20
    assert metrics["eval/sum_check/majority"] == 0.5  # the records alternate right / wrong sums
    assert "baseline/sum_check/accuracy" not in metrics  # no head before training
    assert "train/accuracy" in metrics
    model = AutoModelForSequenceClassification.from_pretrained(run_dir / "classifier").eval()
    assert model.config.num_labels == 2

    # Counted by hand with transformers' own sequence-classification forward, one record at a
    # time (no padding): the exported classifier scores what the run reported.
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "classifier")
    correct = 0
    for record in sum_check_records(split="test", size=20, seed=0):
        ids = torch.tensor([tokenizer(record["text"], add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            correct += int(model(input_ids=ids).logits.argmax(-1).item() == record["label"])
    assert metrics["eval/sum_check/accuracy"] == pytest.approx(correct / 20)
