"""Gather a sweep's run directories into Markdown, LaTeX and CSV tables and PNG plots.

    python scripts/make_table.py results/<experiment> [--metrics a,b] [--baseline "adapter=lora"]

Rows are configurations (a run's overrides without its seed), cells mean ± std over seeds.
Writes table.md, table.tex, table.csv and plots/*.png to --out (default <results dir>/table).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tunelab.results.collect import collect_runs, group_rows
from tunelab.results.plots import plot_loss_curves, plot_metric_vs_rank
from tunelab.results.table import build_table, to_csv, to_latex, to_markdown

DEFAULT_EXTRA = ["trainable_percent", "train_loss_final", "wall_seconds"]


def default_metrics(rows) -> list[str]:
    """Every numeric eval/ score (not counts) plus a few cost columns."""
    keys = {k for row in rows for r in row.completed for k, v in r.metrics.items() if isinstance(v, float)}
    scores = sorted(k for k in keys if k.startswith("eval/") and not k.endswith("/n"))
    return scores + [k for k in DEFAULT_EXTRA if k in keys]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a results folder (searched recursively)")
    parser.add_argument("--metrics", help="comma-separated metrics.json keys (default: eval scores + costs)")
    parser.add_argument("--baseline", help="label of the row to test the others against")
    parser.add_argument("--out", type=Path, help="output folder (default: <results>/table)")
    args = parser.parse_args(argv)

    runs = collect_runs(args.results)
    if not runs:
        print(f"no run directories (metrics.json) under {args.results}", file=sys.stderr)
        return 1
    rows = group_rows(runs)
    metrics = args.metrics.split(",") if args.metrics else default_metrics(rows)
    table = build_table(rows, metrics, baseline=args.baseline)

    out = args.out or args.results / "table"
    (out / "plots").mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(to_markdown(table))
    (out / "table.tex").write_text(to_latex(table))
    (out / "table.csv").write_text(to_csv(table))
    plot_metric_vs_rank(rows, metrics[0], out / "plots" / "metric_vs_rank.png")
    plot_loss_curves(rows, out / "plots" / "loss_curves.png")
    print(to_markdown(table))
    print(f"wrote {out}/table.md, table.tex, table.csv and plots/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
