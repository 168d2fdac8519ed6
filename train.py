"""tunelab entry point: `python train.py [group=option ...] [-m key=a,b,c]`."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
os.environ.setdefault("TUNELAB_ROOT", str(ROOT))

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from tunelab.cli import hoist_multirun_flag  # noqa: E402
from tunelab.training.sweep import run_job, sweep_exit_code  # noqa: E402


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Compose the config and run one experiment (one job of a sweep)."""
    return run_job(cfg)


if __name__ == "__main__":
    sys.argv = hoist_multirun_flag(sys.argv)
    main()
    sys.exit(sweep_exit_code())
