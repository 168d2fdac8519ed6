"""`tunelab table results=DIR [preset=sweep|adapters] [metrics=[a,b]] [baseline=adapter=lora] [out=DIR]`.

preset=sweep (default): a sweep's run directories into Markdown, LaTeX and CSV tables and PNG plots.
Rows are configurations (a run's overrides without its seed), cells mean ± std over seeds. Writes
table.md, table.tex, table.csv and plots/*.png to `out` (default `<results>/table`).
preset=adapters: one row per run with trainable %, measured bytes, exact match before → after,
final loss and training time (the README adapter table), written to `<out>/adapters.md`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from tunelab.apps.arguments import parse_arguments

DEFAULT_EXTRA = ["trainable_percent", "train_loss_final", "wall_seconds"]


@dataclass
class TableArguments:
    results: str = "???"  # a results folder, searched recursively for metrics.json
    preset: str = "sweep"  # sweep: seed-aggregated table and plots; adapters: one row per run
    metrics: list[str] = field(default_factory=list)  # metrics.json keys; default: eval scores + costs
    baseline: str | None = None  # label of the row the others are tested against
    out: str | None = None  # output folder; default <results>/table


def default_metrics(rows) -> list[str]:
    """Every numeric eval/ score (not counts) plus a few cost columns."""
    keys = {k for row in rows for r in row.completed for k, v in r.metrics.items() if isinstance(v, float)}
    scores = sorted(k for k in keys if k.startswith("eval/") and not k.endswith("/n"))
    return scores + [k for k in DEFAULT_EXTRA if k in keys]


def adapters_table(args: TableArguments) -> int:
    """The per-run adapter table (preset=adapters); 1 when no completed run has byte counts."""
    from tunelab.results.adapter_table import collect, markdown

    runs = collect(Path(args.results))
    if not runs:
        print(f"no completed runs with byte counts under {args.results}", file=sys.stderr)
        return 1
    table = markdown(runs)
    out = Path(args.out) if args.out else Path(args.results) / "table"
    out.mkdir(parents=True, exist_ok=True)
    (out / "adapters.md").write_text(table)
    print(table, end="")
    return 0


def main(argv: list[str]) -> int:
    """Write the tables of one results folder as the preset says; 1 when it holds no run."""
    args = parse_arguments("table", TableArguments, argv[1:])
    presets = {"sweep": sweep_table, "adapters": adapters_table}
    if args.preset not in presets:
        from tunelab.core.config import ConfigError

        raise ConfigError(f"tunelab table: preset={args.preset!r}; expected one of {sorted(presets)}")
    return presets[args.preset](args)


def sweep_table(args: TableArguments) -> int:
    """The seed-aggregated table, its LaTeX and CSV, and plots (preset=sweep)."""
    from tunelab.results.collect import collect_runs, group_rows
    from tunelab.results.plots import plot_loss_curves, plot_metric_vs_rank
    from tunelab.results.table import build_table, to_csv, to_latex, to_markdown

    results = Path(args.results)
    runs = collect_runs(results)
    if not runs:
        print(f"no run directories (metrics.json) under {results}", file=sys.stderr)
        return 1
    rows = group_rows(runs)
    metrics = list(args.metrics) or default_metrics(rows)
    table = build_table(rows, metrics, baseline=args.baseline)
    out = Path(args.out) if args.out else results / "table"
    (out / "plots").mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(to_markdown(table))
    (out / "table.tex").write_text(to_latex(table))
    (out / "table.csv").write_text(to_csv(table))
    plot_metric_vs_rank(rows, metrics[0], out / "plots" / "metric_vs_rank.png")
    plot_loss_curves(rows, out / "plots" / "loss_curves.png")
    print(to_markdown(table))
    print(f"wrote {out}/table.md, table.tex, table.csv and plots/")
    return 0
