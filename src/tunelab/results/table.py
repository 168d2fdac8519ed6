"""Turn configuration rows into one table and render it as Markdown, LaTeX (booktabs) and CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from tunelab.results.collect import Row
from tunelab.results.stats import SIGNIFICANCE_LEVEL, TEST_NAME, Summary, paired_p_value, summarize

LOWER_IS_BETTER = ("loss", "seconds", "bytes", "memory", "perplexity", "trainable")


def lower_is_better(metric: str) -> bool:
    """Losses, times and memory improve downwards; scores improve upwards."""
    return any(word in metric for word in LOWER_IS_BETTER)


@dataclass
class Cell:
    summary: Summary | None
    p_value: float | None = None
    best: bool = False

    @property
    def significant(self) -> bool:
        return self.p_value is not None and self.p_value < SIGNIFICANCE_LEVEL


@dataclass
class Table:
    metrics: list[str]
    rows: list[Row]
    cells: list[list[Cell]]  # cells[row][metric]
    baseline: str | None
    shared: list[str]  # overrides every row has: said once in the caption, not in every label

    def label(self, row: Row) -> str:
        """The row's overrides minus the shared ones, with its failed runs counted."""
        text = " ".join(t for t in row.label.split() if t not in self.shared) or row.label
        return f"{text} ({row.n_failed} failed)" if row.n_failed else text

    def caption(self) -> str:
        text = "Mean ± std over seeds (n completed runs per row). Bold: best in its column."
        if self.shared:
            text += f" Every row: {' '.join(self.shared)}."
        if self.baseline:
            text += (
                f" †: differs from the baseline row ({self.baseline}) at p < {SIGNIFICANCE_LEVEL}, "
                f"{TEST_NAME}."
            )
        return text


def shared_overrides(rows: list[Row]) -> list[str]:
    """Overrides common to every row (none when there is a single row)."""
    if len(rows) < 2:
        return []
    common = set.intersection(*(set(r.label.split()) for r in rows))
    return [t for t in rows[0].label.split() if t in common]


def find_baseline(rows: list[Row], baseline: str) -> Row:
    """The row whose label is `baseline`, or the one row whose overrides include all of its."""
    exact = [r for r in rows if r.label == baseline]
    wanted = set(baseline.split())
    matches = exact or [r for r in rows if wanted <= set(r.label.split())]
    if len(matches) > 1:
        which = [r.label for r in matches]
        raise ValueError(
            f"baseline row {baseline!r} matches {len(which)} rows: {which}; add the override that tells "
            "them apart (e.g. --baseline 'adapter=lora rank=8')"
        )
    if not matches:
        raise ValueError(f"baseline row {baseline!r} not found; rows are: {[r.label for r in rows]}")
    return matches[0]


def build_table(rows: list[Row], metrics: list[str], baseline: str | None = None) -> Table:
    """Summaries per row and metric, the best per column, and p-values against `baseline`."""
    base = find_baseline(rows, baseline) if baseline else None
    cells = []
    for row in rows:
        line = []
        for metric in metrics:
            values = row.values(metric)
            p = paired_p_value(values, base.values(metric)) if base and row is not base else None
            line.append(Cell(summarize(list(values.values())), p))
        cells.append(line)
    for col, metric in enumerate(metrics):
        means = [line[col].summary.mean for line in cells if line[col].summary]
        if means:
            best = min(means) if lower_is_better(metric) else max(means)
            for line in cells:
                line[col].best = line[col].summary is not None and line[col].summary.mean == best
    baseline_label = None
    shared = shared_overrides(rows)
    if base is not None:
        baseline_label = " ".join(t for t in base.label.split() if t not in shared) or base.label
    return Table(metrics=metrics, rows=rows, cells=cells, baseline=baseline_label, shared=shared)


def format_number(value: float) -> str:
    """Three decimals for scores, thousands separators for large counts."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3f}"


def cell_text(cell: Cell, bold: tuple[str, str], pm: str, dagger: str) -> str:
    if cell.summary is None:
        return "–"
    s = cell.summary
    text = format_number(s.mean) + (f" {pm} {format_number(s.std)}" if s.n > 1 else "")
    if cell.best:
        text = f"{bold[0]}{text}{bold[1]}"
    return text + (dagger if cell.significant else "")


def to_markdown(table: Table) -> str:
    """A GitHub Markdown table, its caption, and the command behind each row."""
    header = ["configuration", "n", *table.metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for row, cells in zip(table.rows, table.cells, strict=True):
        texts = [cell_text(c, ("**", "**"), "±", " †") for c in cells]
        lines.append("| " + " | ".join([table.label(row), str(len(row.completed)), *texts]) + " |")
    lines += ["", table.caption(), "", "Commands (add `-m seed=...` to repeat the seeds):", ""]
    lines += [f"- {row.label}: `{row.command}`" for row in table.rows]
    return "\n".join(lines) + "\n"


LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_"}
LATEX_SPECIAL |= {"{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
LATEX_SPECIAL |= {"<": r"$<$", ">": r"$>$"}  # a bare < in text mode prints as an inverted !


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(table: Table) -> str:
    """A booktabs table environment."""
    cols = "l" + "r" * (len(table.metrics) + 1)
    header = " & ".join(["Configuration", "$n$", *map(latex_escape, table.metrics)])
    body = []
    for row, cells in zip(table.rows, table.cells, strict=True):
        texts = [cell_text(c, (r"\textbf{", "}"), r"$\pm$", r"$^\dagger$") for c in cells]
        body.append(" & ".join([latex_escape(table.label(row)), str(len(row.completed)), *texts]) + r" \\")
    caption = latex_escape(table.caption()).replace("±", r"$\pm$").replace("†", r"$^\dagger$")
    return (
        "\n".join(
            [
                r"\begin{table}[t]",
                r"\centering",
                rf"\caption{{{caption}}}",
                rf"\begin{{tabular}}{{{cols}}}",
                r"\toprule",
                header + r" \\",
                r"\midrule",
                *body,
                r"\bottomrule",
                r"\end{tabular}",
                r"\end{table}",
            ]
        )
        + "\n"
    )


def to_csv(table: Table) -> str:
    """One line per row: mean, std, n and p-value per metric, plus the command and run dirs."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = ["configuration", "n_completed", "n_failed"]
    for m in table.metrics:
        header += [f"{m}/mean", f"{m}/std", f"{m}/n", f"{m}/p_value"]
    writer.writerow([*header, "command", "run_dirs"])
    for row, cells in zip(table.rows, table.cells, strict=True):
        values: list = [row.label, len(row.completed), row.n_failed]
        for c in cells:
            s = c.summary
            values += [f"{s.mean:.6g}", f"{s.std:.6g}", s.n] if s else ["", "", 0]
            values.append("" if c.p_value is None else f"{c.p_value:.6g}")
        writer.writerow([*values, row.command, ";".join(str(r.path) for r in row.runs)])
    return out.getvalue()
