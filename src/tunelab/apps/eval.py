"""`tunelab eval [run_dir=results/...] [eval=...]` — evaluation without training (`python eval.py`)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from tunelab.apps.hydra_app import run_hydra_app
from tunelab.core.config import PACKAGE_CONF
from tunelab.core.quiet import quiet_libraries


@hydra.main(version_base="1.3", config_path=str(PACKAGE_CONF), config_name="evaluate")
def eval_app(cfg: DictConfig) -> None:
    """Compose the config and evaluate once (one job of a sweep with -m)."""
    from tunelab.evaluation.standalone import evaluate_only  # heavy: after the config is valid

    evaluate_only(cfg)


def main(argv: list[str]) -> int:
    """Run the app on `argv` (argv[0] is the program name)."""
    quiet_libraries()
    run_hydra_app(eval_app, argv)
    return 0
