"""The config schema: every shipped option passes it; a bad knob is refused with its key named."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

import tunelab  # noqa: F401  (registers the ${world:} and ${mul:} resolvers)
from tests.conftest import ROOT
from tunelab.core.config import ConfigError
from tunelab.core.schema import validate

CONF = ROOT / "conf"
GROUPS = ["model", "data", "adapter", "objective", "optimizer", "trainer", "eval", "experiment"]


def compose_with(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


@pytest.mark.parametrize(
    "override", [f"{g}={p.stem}" for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]
)
def test_every_shipped_option_passes_the_schema(override):
    cfg = compose_with([override])
    train = cfg.data.get("train")
    if isinstance(train, DictConfig) and OmegaConf.is_missing(train, "path"):
        train.path = "x.jsonl"  # the one value a user must give
    validate(cfg)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("rank=-1", r"^rank=-1: expected an integer >= 1$"),
        ("rank=2.5", r"^rank=2\.5: expected an integer >= 1$"),
        ("lr=abc", r"^lr='abc': expected a number > 0$"),
        ("lr=0", r"^lr=0: expected a number > 0$"),
        ("lr=nan", r"^lr=nan: expected a number > 0$"),
        ("data.batch_size=0", r"^data\.batch_size=0: expected an integer >= 1$"),
        ("data.batch_size=true", r"^data\.batch_size=True: expected an integer >= 1$"),
        ("data.max_length=-5", r"^data\.max_length=-5: expected an integer >= 1$"),
        ("dropout=1.5", r"^dropout=1\.5: expected a number in \[0, 1\)$"),
        ("objective=dpo objective.beta=-0.1", r"^objective\.beta=-0\.1: expected a number >= 0$"),
        ("objective=grpo objective.group_size=1", r"^objective\.group_size=1: expected an integer >= 2"),
        ("trainer.max_steps=-5", r"^trainer\.max_steps=-5: expected an integer >= 0"),
        ("checkpoint_every=0", r"^checkpoint_every=0: expected an integer >= 1$"),
        ("preemption.signal=SIGFOO", r"^preemption\.signal='SIGFOO': expected a signal name"),
        ("resume_force=yes", r"^resume_force='yes': expected true or false$"),
        ("data=jsonl", r"^data\.train\.path: a value is required \(set data\.train\.path=\.\.\.\)$"),
    ],
)
def test_a_bad_knob_is_refused_with_its_key(override, message):
    cfg = compose_with(override.split())
    with pytest.raises(ConfigError, match=message):
        validate(cfg)


def test_the_schema_module_imports_nothing_heavy():
    heavy = "('torch', 'lightning', 'transformers')"
    code = f"import sys, tunelab.core.schema; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
