"""The mixture table over seeds: mean ± 95% t-interval of every variant on every task.

    python scripts/mixture_table.py RUN_ROOT/seed*/table/results.json [--out DIR] [--versus VARIANT]

Each results.json is one seed's `scripts/combine_adapters.py` output (scripts/mixture_seeds.sh makes
them). Writes table.md and summary.json to --out (default results/multi_adapter_seeds). --versus
adds paired.md: each variant minus VARIANT, per seed, as mean ± 95% t-interval (runs in the same
order of seeds).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tunelab.core.config import ConfigError, project_root
from tunelab.workflows.multi_adapter import over_seeds, seeds_markdown


def paired_differences(runs: list[dict], versus: str) -> list[dict]:
    """Per seed: every variant's scores (and task mean) minus `versus`'s."""
    out = []
    for run in runs:
        tasks = list(run[versus])
        ref = {**run[versus], "mean": sum(run[versus].values()) / len(tasks)}
        out.append(
            {
                v: {c: x - ref[c] for c, x in {**row, "mean": sum(row.values()) / len(tasks)}.items()}
                for v, row in run.items()
                if v != versus
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="one results.json per seed")
    parser.add_argument("--out", type=Path, default=project_root() / "results" / "multi_adapter_seeds")
    parser.add_argument("--versus", help="a variant to subtract, seed by seed (paired differences)")
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
    if args.versus:
        diffs = over_seeds(paired_differences(runs, args.versus), [*task_names, "mean"])
        paired = seeds_markdown(
            {v: {c: row[c] for c in [*task_names, "mean"]} for v, row in diffs.items()}, task_names
        )
        paired = paired.replace(
            "Exact match on", f"Paired difference (variant - {args.versus}) in exact match on"
        )
        (args.out / "paired.md").write_text(paired)
        print(paired)
    return 0


if __name__ == "__main__":
    sys.exit(main())
