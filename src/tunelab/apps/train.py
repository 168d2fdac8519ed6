"""`tunelab train [group=option ...] [-m key=a,b,c]` — the same app as `python train.py`."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from tunelab.apps.hydra_app import run_hydra_app
from tunelab.core.config import PACKAGE_CONF
from tunelab.core.quiet import quiet_libraries


@hydra.main(version_base="1.3", config_path=str(PACKAGE_CONF), config_name="train")
def train_app(cfg: DictConfig) -> float | None:
    """Compose the config and run one experiment (one job of a sweep)."""
    # Imported here: a config error must answer before torch and Lightning load.
    from tunelab.training.sweep import run_job

    return run_job(cfg)


def main(argv: list[str]) -> int:
    """Run the app on `argv` (argv[0] is the program name); non-zero when a sweep job failed."""
    quiet_libraries()
    run_hydra_app(train_app, argv)
    from tunelab.training.sweep import sweep_exit_code

    return sweep_exit_code()
