"""`tunelab export run_dir=results/<run> [out=DIR]`: merge a run's artifact into a standalone HF model.

Writes `<run_dir>/export/` by default. Prompt methods and Houlsby adapters cannot be merged into
weights: the command stops with an error that says how to use their artifact instead.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from tunelab.apps.arguments import parse_arguments


@dataclass
class ExportArguments:
    run_dir: str = "???"  # a finished run directory
    out: str | None = None  # default <run_dir>/export


def main(argv: list[str]) -> int:
    """Export, print the output directory; 1 when the artifact cannot be merged."""
    args = parse_arguments("export", ExportArguments, argv[1:])
    from tunelab.adapters.base import ExportError
    from tunelab.workflows.export import export_run

    try:
        target = export_run(args.run_dir, args.out)
    except ExportError as err:
        print(f"export failed: {err}", file=sys.stderr)
        return 1
    print(f"exported {args.run_dir} -> {target}")
    return 0
