"""What a job knows about itself from Hydra: its run directory, overrides and command."""

from __future__ import annotations

import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from tunelab.core.config import register_resolvers


def output_dir(cfg: DictConfig) -> Path:
    """The run directory: Hydra's job output dir, or `cfg.output_dir` outside a Hydra app."""
    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path(cfg.output_dir)


def job_overrides() -> list[str]:
    """This job's command-line overrides (for a sweep job: its own point of the sweep)."""
    if HydraConfig.initialized():
        return list(HydraConfig.get().overrides.task)
    return []


def command_line() -> str:
    """A command that reruns this one job, for tracing a table row back to its run."""
    program = sys.argv[0] if sys.argv and sys.argv[0] else "train.py"
    # `python train.py` / `python eval.py`, or the console command as typed (`tunelab train`).
    launcher = ["python", Path(program).name] if program.endswith(".py") else [program]
    return " ".join([*launcher, *job_overrides()])


def run_config(run_dir: Path):
    """The resolved config a run saved."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"run_dir={run_dir}: no config.yaml (is it a tunelab run directory?)")
    register_resolvers()
    return OmegaConf.load(path)
