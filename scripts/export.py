"""Merge a run's trained artifact into a standalone HF model directory.

    python scripts/export.py run_dir=results/default/2026-11-23_10-00-00 [out=path/to/dir]

Writes `<run_dir>/export/` by default. Prompt methods and Houlsby adapters cannot be merged into
weights: the command stops with an error that says how to use their artifact instead.
"""

from __future__ import annotations

import sys

from omegaconf import OmegaConf

from tunelab.adapters.base import ExportError
from tunelab.workflows.export import export_run


def main(argv: list[str]) -> int:
    """Parse `key=value` arguments, export, print the output directory."""
    args = OmegaConf.from_dotlist(argv)
    if "run_dir" not in args:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        target = export_run(args.run_dir, args.get("out"))
    except ExportError as err:
        print(f"export failed: {err}", file=sys.stderr)
        return 1
    print(f"exported {args.run_dir} -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
