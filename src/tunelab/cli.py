"""Command-line helpers that run before Hydra parses argv."""

from __future__ import annotations

MULTIRUN_FLAGS = ("-m", "--multirun")


def hoist_multirun_flag(argv: list[str]) -> list[str]:
    """Move `-m`/`--multirun` to the front of the arguments.

    hydra-core 1.3's argparse stops collecting overrides at `-m` when overrides precede it, so
    `train.py adapter=dora -m rank=8,16` fails with "unrecognized arguments" (Hydra issue 3053).
    """
    flags = [a for a in argv[1:] if a in MULTIRUN_FLAGS]
    rest = [a for a in argv[1:] if a not in MULTIRUN_FLAGS]
    return [argv[0], *flags[:1], *rest]
