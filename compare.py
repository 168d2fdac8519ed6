"""Compare methods fairly: `python compare.py comparison=<name> [force=true] [launcher=joblib]`.

tune (equal trials per arm, scored on validation) -> confirm (best setting over seeds, on test)
-> report (table + plots). See docs/comparisons.md.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
os.environ.setdefault("TUNELAB_ROOT", str(ROOT))

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from tunelab.results.compare_app import run_comparison  # noqa: E402


@hydra.main(version_base="1.3", config_path="conf", config_name="compare")
def main(cfg: DictConfig) -> int:
    """Run the comparison's stages; non-zero when a job failed."""
    return run_comparison(cfg, ROOT)


if __name__ == "__main__":
    sys.exit(main())
