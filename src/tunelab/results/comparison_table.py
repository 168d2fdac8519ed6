"""The comparison table: one row per arm, mean ± 95% t-interval per metric, paired tests against
the baseline arm with Holm's correction, tuned setting and resources; Markdown, LaTeX and CSV."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import Any

from tunelab.results.stats import (
    CONFIDENCE,
    SIGNIFICANCE_LEVEL,
    Interval,
    holm,
    paired_p_value,
    seed_invariant,
    t_interval,
)
from tunelab.results.table import latex_escape

ARROWS = {"higher": "↑", "lower": "↓", None: ""}


@dataclass(frozen=True)
class Column:
    """A metric column: metrics.json key, readable label, better direction, display scale/unit.

    `tested` columns get paired tests and significance marks; resource columns never do.
    """

    key: str
    label: str
    better: str | None = "higher"
    scale: float = 1.0
    unit: str = ""
    tested: bool = True

    @property
    def header(self) -> str:
        unit = f" ({self.unit})" if self.unit else ""
        return f"{self.label}{unit} {ARROWS[self.better]}".strip()


@dataclass
class Arm:
    """One row: its runs' values per metric keyed by seed, its tuned setting and provenance."""

    name: str
    label: str
    setting: dict[str, Any]
    values: dict[str, dict[int, float]]  # metric -> {seed: value}
    commits: set[str] = field(default_factory=set)
    dirty: bool = False
    n_failed: int = 0

    @property
    def n(self) -> int:
        return max((len(v) for v in self.values.values()), default=0)


@dataclass
class Cell:
    interval: Interval | None
    p_value: float | None = None
    p_holm: float | None = None
    best: bool = False
    invariant: bool = False  # every seed gave the same value: no interval shown

    @property
    def significant(self) -> bool:
        return self.p_holm is not None and self.p_holm < SIGNIFICANCE_LEVEL


@dataclass
class ComparisonTable:
    columns: list[Column]
    arms: list[Arm]
    cells: list[list[Cell]]  # cells[arm][column]
    baseline: str | None
    notes: list[str]  # budget, tuning, provenance: printed in the caption


def differing_labels(overrides: dict[str, list[str]]) -> dict[str, str]:
    """Each arm's overrides minus those every arm shares: the row label shows only what differs."""
    if len(overrides) < 2:
        return {arm: " ".join(o) or arm for arm, o in overrides.items()}
    shared = set.intersection(*(set(o) for o in overrides.values()))
    return {arm: " ".join(x for x in o if x not in shared) or arm for arm, o in overrides.items()}


def build_comparison_table(
    arms: list[Arm], columns: list[Column], baseline: str | None, notes: list[str]
) -> ComparisonTable:
    """Intervals per cell, paired p-values against the baseline arm, Holm across arms, the best."""
    base = next((a for a in arms if a.name == baseline), None)
    cells = [[Cell(t_interval(list(arm.values.get(c.key, {}).values()))) for c in columns] for arm in arms]
    for j, column in enumerate(columns):
        for i, arm in enumerate(arms):
            cells[i][j].invariant = len(arm.values.get(column.key, {})) > 1 and seed_invariant(
                arm.values[column.key]
            )
        if column.tested and base is not None:
            raw = {
                arm.name: paired_p_value(arm.values.get(column.key, {}), base.values.get(column.key, {}))
                for arm in arms
                if arm is not base
            }
            adjusted = holm(raw)
            for i, arm in enumerate(arms):
                if arm is not base:
                    cells[i][j].p_value, cells[i][j].p_holm = raw[arm.name], adjusted[arm.name]
        means = [line[j].interval.mean for line in cells if line[j].interval]
        if means and column.better in ("higher", "lower"):
            best = max(means) if column.better == "higher" else min(means)
            for line in cells:
                line[j].best = line[j].interval is not None and line[j].interval.mean == best
    return ComparisonTable(columns, arms, cells, baseline, notes)


def decimals_for(interval: Interval, scale: float) -> int:
    """Decimals that show the interval's half-width to two significant digits (the mean gets the
    same); without a half-width, three significant digits of the mean."""
    width = (interval.half_width or 0.0) * scale
    if width <= 1e-9 * abs(interval.mean * scale):  # equal values whose float mean is off by an ulp
        width = 0.0
    reference = width if width > 0 else abs(interval.mean * scale)
    if reference == 0 or not math.isfinite(reference):
        return 0
    significant = 2 if width > 0 else 3
    return max(0, significant - 1 - math.floor(math.log10(reference)))


def cell_text(cell: Cell, column: Column, style: str) -> str:
    """`mean ± half-width` in matching digits, bold when best, † when Holm-significant."""
    if cell.interval is None:
        return "–"
    iv = cell.interval
    d = decimals_for(iv, column.scale)
    text = f"{iv.mean * column.scale:,.{d}f}"
    if iv.half_width is not None and not cell.invariant:
        pm = r"$\pm$" if style == "latex" else "±"
        text += f" {pm} {iv.half_width * column.scale:,.{d}f}"
    if cell.best:
        text = rf"\textbf{{{text}}}" if style == "latex" else f"**{text}**"
    if column.tested and cell.significant:
        text += r"$^\dagger$" if style == "latex" else " †"
    return text


def row_texts(table: ComparisonTable, style: str) -> list[list[str]]:
    """The visible cells: label, n, tuned setting, then one per column."""
    rows = []
    for arm, cells in zip(table.arms, table.cells, strict=True):
        label = arm.label + ("*" if arm.dirty else "")
        if arm.n_failed:
            label += f" ({arm.n_failed} failed)"
        setting = ", ".join(
            f"{k}={v:.2g}" if isinstance(v, float) else f"{k}={v}" for k, v in arm.setting.items()
        )
        texts = [cell_text(c, col, style) for c, col in zip(cells, table.columns, strict=True)]
        if style == "latex":
            label, setting = latex_escape(label), latex_escape(setting)
        rows.append([label, str(arm.n), setting or "–", *texts])
    return rows


def caption(table: ComparisonTable, style: str) -> str:
    """What the numbers are, what the marks mean, and the notes (budget, tuning, provenance)."""
    lt = r"$<$" if style == "latex" else "<"
    pct = f"{CONFIDENCE:.0%}".replace("%", r"\%" if style == "latex" else "%")
    pm = r"$\pm$" if style == "latex" else "±"
    parts = [
        f"Mean {pm} {pct} t-interval over seeds (n per row); a value without an interval did not vary "
        "with the seed. Bold: best mean in its column, by the direction its header's arrow declares."
    ]
    if table.baseline:
        dagger = r"$^\dagger$" if style == "latex" else "†"
        base = latex_escape(table.baseline) if style == "latex" else table.baseline
        parts.append(
            f"{dagger}: differs from the baseline arm {base} "
            f"at Holm-adjusted p {lt} {SIGNIFICANCE_LEVEL} (two-sided paired t-test over the seeds both "
            "arms share, Holm correction across the arms compared with the baseline, per metric); "
            "resource columns are not tested."
        )
    if any(a.dirty for a in table.arms):
        parts.append("*: some runs of this row came from a git tree with uncommitted changes.")
    notes = [latex_escape(n) if style == "latex" else n for n in table.notes]
    return " ".join(parts + notes)


def to_markdown(table: ComparisonTable) -> str:
    header = ["Arm", "n", "Tuned", *(c.header for c in table.columns)]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---", "---:", "---"] + ["---:"] * len(table.columns)) + "|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in row_texts(table, "markdown")]
    return "\n".join(lines) + "\n\n" + caption(table, "markdown") + "\n"


def latex_header(column: Column) -> str:
    """Label over unit and arrow, stacked in two lines: narrow columns fit more of them on a page."""
    arrow = {"higher": r"$\uparrow$", "lower": r"$\downarrow$"}.get(column.better or "", "")
    second = " ".join(x for x in [f"({latex_escape(column.unit)})" if column.unit else "", arrow] if x)
    if not second:
        return latex_escape(column.label)
    return rf"\begin{{tabular}}[b]{{@{{}}r@{{}}}}{latex_escape(column.label)}\\{second}\end{{tabular}}"


def to_latex(table: ComparisonTable) -> str:
    """A booktabs table, shrunk to the text width only when wider (needs graphicx and booktabs)."""
    header = " & ".join(["Arm", "$n$", "Tuned", *map(latex_header, table.columns)]) + r" \\"
    body = [" & ".join(r) + r" \\" for r in row_texts(table, "latex")]
    cols = "lrl" + "r" * len(table.columns)
    lines = [
        r"\begin{table*}[t]",
        r"\centering",
        rf"\caption{{{caption(table, 'latex')}}}",
        r"\resizebox{\ifdim\width>\textwidth\textwidth\else\width\fi}{!}{%",
        rf"\begin{{tabular}}{{{cols}}}",
        r"\toprule",
        header,
        r"\midrule",
        *body,
        r"\bottomrule",
        r"\end{tabular}}",
        r"\end{table*}",
    ]
    return "\n".join(lines) + "\n"


def to_csv(table: ComparisonTable) -> str:
    """Full precision: per metric mean, half-width, n, raw and Holm-adjusted p."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = ["arm", "label", "n", "n_failed", "tuned", "dirty"]
    for c in table.columns:
        header += [f"{c.key}/mean", f"{c.key}/ci95_half_width", f"{c.key}/n", f"{c.key}/p", f"{c.key}/p_holm"]
    writer.writerow(header)
    for arm, cells in zip(table.arms, table.cells, strict=True):
        values: list = [arm.name, arm.label, arm.n, arm.n_failed, arm.setting, arm.dirty]
        for cell in cells:
            iv = cell.interval
            values += [
                "" if iv is None else f"{iv.mean:.6g}",
                "" if iv is None or iv.half_width is None else f"{iv.half_width:.6g}",
                0 if iv is None else iv.n,
                "" if cell.p_value is None else f"{cell.p_value:.6g}",
                "" if cell.p_holm is None else f"{cell.p_holm:.6g}",
            ]
        writer.writerow(values)
    return out.getvalue()


def pareto_front(points: dict[str, tuple[float, float]], better: str | None = "higher") -> set[str]:
    """Names whose (score, cost) no other point beats: a score as good or better (by `better`,
    higher or lower) at a cost ≤, with one of the two strict."""
    sign = -1.0 if better == "lower" else 1.0
    points = {name: (sign * score, cost) for name, (score, cost) in points.items()}
    front = set()
    for name, (score, cost) in points.items():
        dominated = any(
            s >= score and c <= cost and (s > score or c < cost)
            for other, (s, c) in points.items()
            if other != name
        )
        if not dominated:
            front.add(name)
    return front
