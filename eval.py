"""tunelab evaluation without training: `python eval.py [run_dir=results/...] [eval=...]`."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
os.environ.setdefault("TUNELAB_ROOT", str(ROOT))

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from tunelab.cli import hoist_multirun_flag  # noqa: E402
from tunelab.evaluation.standalone import evaluate_only  # noqa: E402


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    """Compose the config and evaluate once (one job of a sweep with -m)."""
    evaluate_only(cfg)


if __name__ == "__main__":
    sys.argv = hoist_multirun_flag(sys.argv)
    main()
