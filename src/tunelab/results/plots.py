"""PNG plots of a sweep: a metric against rank per adapter, and training loss curves."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers
import matplotlib.pyplot as plt
from omegaconf import OmegaConf

from tunelab.results.collect import Row, Run
from tunelab.results.stats import summarize


def run_rank(run: Run) -> int | None:
    """The `rank` knob from the run's resolved config."""
    config = run.directory / "config.yaml"
    return OmegaConf.load(config).get("rank") if config.exists() else None


def plot_metric_vs_rank(rows: list[Row], metric: str, path: Path) -> bool:
    """Mean metric over seeds against rank, one line per adapter; False if no rank varies."""
    points: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        for run in row.completed:
            rank = run_rank(run)
            if rank is not None and metric in run.metrics:
                points[run.metrics.get("adapter", "?")][rank].append(float(run.metrics[metric]))
    if not any(len(by_rank) > 1 for by_rank in points.values()):
        return False
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for adapter, by_rank in sorted(points.items()):
        ranks = sorted(by_rank)
        sums = [summarize(by_rank[r]) for r in ranks]
        ax.errorbar(ranks, [s.mean for s in sums], yerr=[s.std for s in sums], marker="o", label=adapter)
    ax.set_xscale("log", base=2)
    ax.set(xlabel="rank", ylabel=metric)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def read_loss_curve(run: Run) -> tuple[list[int], list[float]]:
    """(steps, train/loss) from the run's CSV log."""
    log = run.directory / "metrics.csv"
    if not log.exists():
        return [], []
    steps, losses = [], []
    with log.open() as fh:
        for record in csv.DictReader(fh):
            if record.get("train/loss"):
                steps.append(int(record["step"]))
                losses.append(float(record["train/loss"]))
    return steps, losses


def plot_loss_curves(rows: list[Row], path: Path) -> bool:
    """Training loss against step for the first completed run of every row."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    drawn = False
    for row in rows:
        if row.completed:
            steps, losses = read_loss_curve(row.completed[0])
            if steps:
                ax.plot(steps, losses, label=row.label)
                drawn = True
    if drawn:
        ax.set(xlabel="step", ylabel="train/loss")
        ax.legend(fontsize="small")
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return drawn
