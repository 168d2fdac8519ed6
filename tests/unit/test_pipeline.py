"""Pipeline configs: stages parsed and checked, each stage's command built from its overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunelab.core.config import ConfigError
from tunelab.results.collect import Row, Run
from tunelab.workflows.pipeline import (
    Stage,
    default_stage_metrics,
    load_pipeline,
    stage_command,
    stage_output,
)

CONF = Path(__file__).resolve().parents[2] / "conf" / "pipeline"


@pytest.mark.parametrize("path", sorted(CONF.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_pipelines_load(path):
    stages = load_pipeline(path)
    assert stages and all(isinstance(s, Stage) and s.overrides for s in stages)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("stages: []\n", "non-empty list under 'stages'"),
        ("stages:\n  - {overrides: [a=1]}\n", r"stages\[0\]: expected"),
        ("stages:\n  - {name: a, overrides: [1]}\n", r"stages\[0\] \(a\): overrides must be strings"),
        ("stages:\n  - {name: a}\n  - {name: a}\n", "stage names must be unique"),
    ],
)
def test_bad_pipeline_is_a_config_error(tmp_path, text, message):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_pipeline(path)


def test_unknown_pipeline_name_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no_such"):
        load_pipeline("no_such", conf_dir=tmp_path)


def test_stage_command_puts_shared_overrides_last_and_the_input_model(tmp_path):
    cmd = stage_command(
        Stage("sft", ["trainer.max_steps=300"]), tmp_path / "2_sft", tmp_path / "m", ["trainer.max_steps=3"]
    )
    args = cmd[2:]
    assert args.index("trainer.max_steps=300") < args.index("trainer.max_steps=3")  # shared wins
    assert f"hydra.run.dir={tmp_path / '2_sft'}" in args and f"model.name_or_path={tmp_path / 'm'}" in args
    assert not any(a.startswith("model.name_or_path") for a in stage_command(Stage("a"), tmp_path, None, []))


def test_stage_output_prefers_the_named_output_model(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps({"status": "completed", "output_model": "pruned"}))
    assert stage_output(tmp_path) == tmp_path / "pruned"


def test_stage_table_columns_are_scores_then_costs():
    run = Run(
        path=Path("1_a"),
        metrics={
            "status": "completed",
            "eval/arithmetic/exact_match": 0.5,
            "eval/arithmetic/n": 200,
            "pruned/reverse/exact_match": 0.1,
            "train_loss_final": 1.0,
            "prune/sparsity": 0.5,
            "lr": 0.1,
        },
    )
    metrics = default_stage_metrics([Row("1_a", [run])])
    assert metrics == [
        "eval/arithmetic/exact_match",
        "pruned/reverse/exact_match",
        "prune/sparsity",
        "train_loss_final",
    ]
