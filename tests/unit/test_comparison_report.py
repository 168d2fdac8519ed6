"""Derived report columns: memory per job and the fit's own time."""

import pytest
from omegaconf import OmegaConf

from tunelab.results.comparison import Job
from tunelab.results.comparison_report import derived_metrics, grid_edges, spaces_text
from tunelab.results.comparison_table import Arm


def test_cpu_memory_is_training_state_bytes_not_the_shared_process_rss():
    metrics = {"peak_memory_kind": "cpu_max_rss", "peak_memory_bytes": 9e9, "weight_bytes": 1000,
               "grad_bytes": 200, "optimizer_state_bytes": 400, "train_tokens": 5000,
               "train_tokens_per_sec": 250.0}  # fmt: skip
    assert derived_metrics(metrics) == pytest.approx({"memory_bytes": 1600.0, "train_seconds": 20.0})


def test_cuda_memory_is_the_peak_allocation():
    metrics = {"peak_memory_kind": "cuda", "peak_memory_bytes": 123456, "weight_bytes": 1}
    assert derived_metrics(metrics) == {"memory_bytes": 123456.0}


def test_best_setting_at_the_grid_edge_is_flagged():
    tune = [Job("tune", a, f"trial{i}", [], {"lr": lr}) for a in ("x", "y") for i, lr in enumerate([1, 2, 3])]
    arms = [Arm("x", "x", {"lr": 3}, {}), Arm("y", "y", {"lr": 2}, {})]
    assert grid_edges(arms, tune) == ["x: the best lr is the largest tried; widen its grid."]


def test_the_caption_names_each_arms_own_search_space():
    cmp = OmegaConf.create(
        {"arms": {"lora": [], "full": []}, "tune": {"space": {"lr": [0.3, 1.0]}, "arm_space": {}}}
    )
    assert spaces_text(cmp) == "{'lr': [0.3, 1.0]}"
    cmp.tune.arm_space = {"full": {"lr": [0.1, 0.3]}}
    assert spaces_text(cmp) == "lora {'lr': [0.3, 1.0]}; full {'lr': [0.1, 0.3]}"
