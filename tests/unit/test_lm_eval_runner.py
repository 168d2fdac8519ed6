"""The eval runner's keys: per-entry scores, multi-task entries (lm-eval) and deltas."""

from __future__ import annotations

import json

import pytest

from tunelab.evaluation.runner import deltas, evaluate


class FixedTask:
    def __init__(self, result: dict) -> None:
        self.result = result

    def run(self, model, tokenizer, batch_size: int) -> dict:
        return self.result


def test_multi_task_entries_are_keyed_by_their_own_task_names(tmp_path):
    entries = {
        "arithmetic": FixedTask({"exact_match": 0.25, "n": 4, "samples": [{"prediction": "1"}]}),
        "lm_eval": FixedTask(
            {"tasks": {"tiny_reverse": {"exact_match": 0.5, "n": 2}}, "samples": [{"x": 1}]}
        ),
    }
    samples = tmp_path / "samples.jsonl"
    scores = evaluate(None, None, entries, 8, "baseline", samples)
    assert scores == {
        "baseline/arithmetic/exact_match": 0.25,
        "baseline/arithmetic/n": 4,
        "baseline/tiny_reverse/exact_match": 0.5,
        "baseline/tiny_reverse/n": 2,
    }
    lines = [json.loads(line) for line in samples.read_text().splitlines()]
    assert [(s["phase"], s["task"]) for s in lines] == [("baseline", "arithmetic"), ("baseline", "lm_eval")]


def test_deltas_are_after_minus_before_for_float_scores_only():
    metrics = {
        "baseline/arithmetic/exact_match": 0.0,
        "eval/arithmetic/exact_match": 0.215,
        "baseline/reverse/exact_match": 0.92,
        "eval/reverse/exact_match": 0.055,
        "baseline/reverse/n": 200,
        "eval/reverse/n": 200,
        "eval/only_after/acc": 0.5,
        "train_loss_final": 0.3,
        "baseline/reverse/tokens_per_sec": 100.0,  # speed, not a score: no delta
        "eval/reverse/tokens_per_sec": 120.0,
        "baseline/reverse/seconds": 2.0,
        "eval/reverse/seconds": 1.5,
    }
    assert deltas(metrics) == {
        "delta/arithmetic/exact_match": pytest.approx(0.215),
        "delta/reverse/exact_match": pytest.approx(0.055 - 0.92),
    }
