"""`tunelab compare comparison=<name> [force=true] [launcher=joblib]` (= `python compare.py`).

tune (equal trials per arm, scored on validation) -> confirm (best setting over seeds, on test)
-> report (table + plots). See docs/comparisons.md.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from tunelab.apps.hydra_app import run_hydra_app
from tunelab.core.config import PACKAGE_CONF
from tunelab.core.quiet import quiet_libraries

_exit_codes: list[int] = []


@hydra.main(version_base="1.3", config_path=str(PACKAGE_CONF), config_name="compare")
def compare_app(cfg: DictConfig) -> None:
    """Run the comparison's stages; remembers the exit code (non-zero when a job failed)."""
    from tunelab.core.config import project_root
    from tunelab.results.compare_app import run_comparison

    _exit_codes.append(run_comparison(cfg, project_root()))


def main(argv: list[str]) -> int:
    """Run the app on `argv` (argv[0] is the program name)."""
    quiet_libraries()
    _exit_codes.clear()
    run_hydra_app(compare_app, argv)
    return max(_exit_codes, default=0)
