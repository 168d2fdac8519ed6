"""Running a Hydra app from an argv list, with the multirun-flag fix hydra-core 1.3 needs."""

from __future__ import annotations

import sys
from collections.abc import Callable

MULTIRUN_FLAGS = ("-m", "--multirun")


def hoist_multirun_flag(argv: list[str]) -> list[str]:
    """Move `-m`/`--multirun` to the front of the arguments.

    hydra-core 1.3's argparse stops collecting overrides at `-m` when overrides precede it, so
    `train.py adapter=dora -m rank=8,16` fails with "unrecognized arguments" (Hydra issue 3053).
    """
    flags = [a for a in argv[1:] if a in MULTIRUN_FLAGS]
    rest = [a for a in argv[1:] if a not in MULTIRUN_FLAGS]
    return [argv[0], *flags[:1], *rest]


def run_hydra_app(app: Callable[[], object], argv: list[str]) -> None:
    """Call a `@hydra.main` function as if `argv` were the command line (Hydra reads sys.argv)."""
    saved = sys.argv
    sys.argv = hoist_multirun_flag(argv)
    try:
        app()
    finally:
        sys.argv = saved
