"""The mixture table over seeds: mean ± 95% t-interval of every variant on every task.

    python scripts/mixture_table.py RUN_ROOT/seed*/table/results.json [--out DIR]

Each results.json is one seed's `scripts/combine_adapters.py` output (scripts/mixture_seeds.sh makes
them). Writes table.md and summary.json to --out (default results/multi_adapter_seeds).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tunelab.core.config import ConfigError, project_root
from tunelab.workflows.multi_adapter import over_seeds, seeds_markdown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="one results.json per seed")
    parser.add_argument("--out", type=Path, default=project_root() / "results" / "multi_adapter_seeds")
    args = parser.parse_args(argv)
    loaded = [json.loads(p.read_text()) for p in args.results]
    runs = [r["scores"] for r in loaded]
    task_names = list(next(iter(runs[0].values())))
    try:
        summary = over_seeds(runs, task_names)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    table = seeds_markdown(summary, task_names)
    (args.out / "table.md").write_text(table)
    rows = {
        v: {c: {"mean": iv.mean, "half_width": iv.half_width, "n": iv.n} for c, iv in row.items()}
        for v, row in summary.items()
    }
    sources = [str(p) for p in args.results]
    (args.out / "summary.json").write_text(json.dumps({"summary": rows, "runs": sources}, indent=2) + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
