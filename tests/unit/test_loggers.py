"""Each logger option instantiates with the run directory and writes there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate

import tunelab  # noqa: F401
from tunelab.training.loggers import finish_wandb

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("option", "expected"), [("csv", "metrics.csv"), ("tensorboard", "tensorboard"), ("mlflow", "mlflow.db")]
)
def test_logger_writes_into_the_run_dir(tmp_path, option, expected):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=[f"logger={option}", f"hydra.run.dir={tmp_path}"],
            return_hydra_config=True,
        )
    cfg.hydra.runtime.output_dir = str(tmp_path)
    HydraConfig.instance().set_config(cfg)
    loggers = [instantiate(spec, save_dir=str(tmp_path)) for spec in cfg.logger.values()]
    for logger in loggers:
        logger.log_metrics({"train/loss": 1.5}, step=1)
        logger.finalize("success")
    assert (tmp_path / expected).exists()
    assert (tmp_path / "metrics.csv").exists()  # CSV is always on


def test_wandb_without_credentials_is_offline(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc login
    from tunelab.training.loggers import wandb_logger

    logger = wandb_logger(save_dir=str(tmp_path), project="t", group="g", tags=["lora", ""])
    logger.log_metrics({"x": 1.0}, step=0)
    finish_wandb()
    assert list((tmp_path / "wandb").glob("offline-run-*"))
    assert os.environ.get("WANDB_API_KEY") is None
