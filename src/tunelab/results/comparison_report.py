"""The report stage: the table in three formats, the tuning trials, a Pareto plot and loss curves."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers
import matplotlib.pyplot as plt
import numpy as np
from omegaconf import DictConfig, OmegaConf

from tunelab.results.comparison import Job, arm_overrides, format_value, job_metrics, space_of
from tunelab.results.comparison_table import (
    Arm,
    Column,
    ComparisonTable,
    build_comparison_table,
    differing_labels,
    pareto_front,
    to_csv,
    to_latex,
    to_markdown,
)


def derived_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Columns computed from a run's metrics: memory and train time.

    `memory_bytes` is CUDA's peak allocation where the run had a GPU; on CPU the process's peak RSS
    is not per job (jobs of one launcher process share it), so the bytes of weights, gradients and
    optimizer state are used instead. `train_seconds` is the fit alone (no evaluation).
    """
    out: dict[str, float] = {}
    if metrics.get("peak_memory_kind") == "cuda":
        out["memory_bytes"] = float(metrics["peak_memory_bytes"])
    elif "weight_bytes" in metrics:
        out["memory_bytes"] = float(
            metrics["weight_bytes"] + metrics.get("grad_bytes", 0) + metrics.get("optimizer_state_bytes", 0)
        )
    if metrics.get("train_tokens_per_sec"):
        out["train_seconds"] = metrics["train_tokens"] / metrics["train_tokens_per_sec"]
    return out


def columns_of(report: DictConfig) -> list[Column]:
    """Tested metric columns then untested resource columns, from `comparison.report`."""
    cols = [Column(**OmegaConf.to_container(c), tested=True) for c in report.metrics]
    return cols + [Column(**OmegaConf.to_container(c), tested=False) for c in report.resources]


def collect_arms(
    comparison: DictConfig, out_dir: Path, confirm: list[Job], columns: list[Column]
) -> tuple[list[Arm], dict[str, list[dict]]]:
    """Rows from the confirm stage's jobs, and each arm's run metrics (for the plots)."""
    labels = differing_labels(arm_overrides(comparison))
    arms, runs = [], defaultdict(list)
    for name in labels:
        jobs = [j for j in confirm if j.arm == name]
        values: dict[str, dict[int, float]] = defaultdict(dict)
        arm = Arm(name, labels[name], jobs[0].setting if jobs else {}, values)
        for job in jobs:
            if job.status != "completed":
                arm.n_failed += 1
                continue
            metrics = job_metrics(out_dir, job)
            metrics |= derived_metrics(metrics)
            runs[name].append(metrics | {"_run_dir": str(out_dir / job.run_dir)})
            for col in columns:
                if isinstance(metrics.get(col.key), (int, float)):
                    values[col.key][job.seed] = float(metrics[col.key])
            git = (metrics.get("provenance") or {}).get("git") or {}
            arm.commits.add(str(git.get("commit"))[:10])
            arm.dirty |= bool(git.get("dirty"))
        arms.append(arm)
    return arms, runs


def span(values: list) -> str:
    """`lo-hi` of sorted values, or the one value."""
    return str(values[0]) if values[0] == values[-1] else f"{values[0]}-{values[-1]}"


def notes_of(comparison: DictConfig, arms: list[Arm], runs: dict[str, list[dict]]) -> list[str]:
    """Caption notes: the budget, the tuning protocol and where the numbers came from."""
    budget = comparison.budget
    steps = {name: {r.get("train_steps") for r in rs} for name, rs in runs.items()}
    steps_text = ", ".join(f"{n} {sorted(s)[0] if len(s) == 1 else sorted(s)}" for n, s in steps.items())
    tokens = {
        name: sorted({r["train_tokens"] for r in rs if "train_tokens" in r}) for name, rs in runs.items()
    }
    tokens_text = ", ".join(f"{n} {span(t)}" for n, t in tokens.items() if t)
    if budget.get("steps") is not None:
        spent = f"Budget: {budget.steps} optimizer steps per run."
    elif budget.get("tokens") is not None:
        spent = (
            f"Budget: {budget.tokens} training tokens per run (optimizer steps: {steps_text}; "
            f"tokens trained: {tokens_text})."
        )
    else:
        spent = f"Budget: {budget.examples} training examples per run (optimizer steps: {steps_text})."
    if budget.get("seconds") is not None:
        spent += f" Wall-clock stop: {budget.seconds} s of training per run."
    tune = comparison.tune
    space = spaces_text(comparison)
    relative = " (lr as multiples of each arm's default)" if tune.relative_lr else ""
    how = "Optuna TPE" if tune.get("method") == "optuna" else "grid"
    tuned = (
        f"Tuned: best of {tune.trials} {how} trials per arm over {space}{relative} on {tune.metric} of the "
        f"validation split carved from the training data ({seeds_text(tune)}); scored on the test split."
    )
    records = [r.get("provenance") or {} for rs in runs.values() for r in rs]
    commits = sorted({str((p.get("git") or {}).get("commit"))[:10] for p in records})
    packages = sorted(
        {" ".join(f"{k} {v}" for k, v in (p.get("packages") or {}).items() if v) for p in records}
    )
    hardware = sorted({f"{(p.get('hardware') or {}).get('cpu')}" for p in records})
    source = (
        f"Commits: {', '.join(commits)}. Packages: {'; '.join(packages)}. Hardware: {'; '.join(hardware)}."
    )
    return [spent, tuned, source]


def spaces_text(comparison: DictConfig) -> str:
    """The searched space: one dict when every arm searched the same, else each arm's (`arm_space`)."""
    spaces = {arm: space_of(comparison, arm) for arm in comparison.arms}
    if len({repr(v) for v in spaces.values()}) <= 1:
        return str(next(iter(spaces.values()), {}))
    return "; ".join(f"{arm} {space}" for arm, space in spaces.items())


def seeds_text(tune: DictConfig) -> str:
    """Which seeds scored each trial, for the caption."""
    seeds = tune.get("seeds")
    if seeds is None:
        return f"seed {tune.seed}"
    return f"each trial the mean over seeds {', '.join(str(s) for s in seeds)}"


def grid_edges(arms: list[Arm], tune: list[Job]) -> list[str]:
    """A note per arm whose best value of a knob is the largest or smallest it tried: the best
    may lie outside the grid, so that arm may be under-tuned."""
    notes = []
    for arm in arms:
        for knob, best in arm.setting.items():
            tried = sorted({j.setting[knob] for j in tune if j.arm == arm.name and knob in j.setting})
            if len(tried) > 1 and best in (tried[0], tried[-1]):
                side = "largest" if best == tried[-1] else "smallest"
                notes.append(f"{arm.name}: the best {knob} is the {side} tried; widen its grid.")
    return notes


def tune_summary(comparison: DictConfig, out_dir: Path, tune: list[Job]) -> str:
    """Markdown list of every trial and its validation score (the tuning is part of the result)."""
    metric = comparison.tune.metric
    lines = [f"| arm | trial | setting | {metric} (validation) | status |", "|---|---|---|---:|---|"]
    for job in tune:
        value = job_metrics(out_dir, job).get(metric)
        shown = f"{value:.4g}" if isinstance(value, (int, float)) else "–"
        setting = ", ".join(f"{k}={format_value(v)}" for k, v in job.setting.items())
        lines.append(f"| {job.arm} | {job.key} | {setting} | {shown} | {job.status} |")
    return "\n".join(lines) + "\n"


def plot_pareto(table: ComparisonTable, score_key: str, path: Path) -> bool:
    """Score against memory and against train time; non-dominated arms filled and named."""
    col = {c.key: c for c in table.columns}
    if score_key not in col:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    drawn = False
    for ax, cost_key in zip(axes, ("memory_bytes", "train_seconds"), strict=True):
        points = {}
        for arm in table.arms:
            score, cost = arm.values.get(score_key, {}), arm.values.get(cost_key, {})
            if score and cost:
                points[arm.label] = (
                    float(np.mean(list(score.values()))),
                    float(np.mean(list(cost.values()))),
                )
        front = pareto_front(points, col[score_key].better)
        cost_col = col.get(cost_key, Column(cost_key, cost_key))
        for label, (s, c) in points.items():
            on = label in front
            ax.scatter(
                c * cost_col.scale,
                s * col[score_key].scale,
                s=50,
                facecolors="C0" if on else "none",
                edgecolors="C0",
            )
            ax.annotate(
                label,
                (c * cost_col.scale, s * col[score_key].scale),
                fontsize=7,
                xytext=(4, 3),
                textcoords="offset points",
            )
            drawn = True
        ax.set(xlabel=cost_col.header, ylabel=col[score_key].header)
    fig.suptitle("Filled: not dominated (no arm scores better at lower cost). Seed means.", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return drawn


def read_loss(run_dir: str) -> dict[int, float]:
    """{step: train/loss} from the run's CSV log."""
    log = Path(run_dir) / "metrics.csv"
    if not log.exists():
        return {}
    with log.open() as fh:
        return {int(r["step"]): float(r["train/loss"]) for r in csv.DictReader(fh) if r.get("train/loss")}


def plot_loss_curves(arms: list[Arm], runs: dict[str, list[dict]], path: Path) -> bool:
    """Training loss, the mean over seeds with a band of ± one standard deviation, per arm."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    drawn = False
    for i, arm in enumerate(arms):
        curves = [read_loss(r["_run_dir"]) for r in runs.get(arm.name, [])]
        curves = [c for c in curves if c]
        if not curves:
            continue
        steps = sorted(set.intersection(*(set(c) for c in curves)))
        losses = np.array([[c[s] for s in steps] for c in curves])
        mean, std = losses.mean(axis=0), losses.std(axis=0, ddof=1) if len(curves) > 1 else 0 * losses[0]
        ax.plot(steps, mean, color=f"C{i}", label=f"{arm.label} (n={len(curves)})")
        ax.fill_between(steps, mean - std, mean + std, color=f"C{i}", alpha=0.2)
        drawn = True
    if drawn:
        ax.set(xlabel="optimizer step", ylabel="train loss", title="mean over seeds, band: ± 1 s.d.")
        ax.legend(fontsize="small")
        fig.tight_layout()
        fig.savefig(path, dpi=130)
    plt.close(fig)
    return drawn


def write_report(
    comparison: DictConfig, out_dir: Path, tune: list[Job], confirm: list[Job]
) -> ComparisonTable:
    """report/: table.md, table.tex, table.csv, tuning.md, pareto.png, loss.png."""
    report_dir = out_dir / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    columns = columns_of(comparison.report)
    arms, runs = collect_arms(comparison, out_dir, confirm, columns)
    notes = notes_of(comparison, arms, runs) + grid_edges(arms, tune)
    table = build_comparison_table(arms, columns, comparison.baseline, notes)
    (report_dir / "table.md").write_text(to_markdown(table))
    (report_dir / "table.tex").write_text(to_latex(table))
    (report_dir / "table.csv").write_text(to_csv(table))
    (report_dir / "tuning.md").write_text(tune_summary(comparison, out_dir, tune))
    plot_pareto(table, comparison.report.pareto_metric, report_dir / "pareto.png")
    plot_loss_curves(arms, runs, report_dir / "loss.png")
    return table
