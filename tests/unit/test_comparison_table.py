"""The comparison table: Holm marks, best by declared direction, digits, labels, Pareto, LaTeX."""

import shutil
import subprocess

import pytest
from scipy import stats as sps

from tunelab.results.comparison_table import (
    Arm,
    Column,
    build_comparison_table,
    cell_text,
    decimals_for,
    differing_labels,
    pareto_front,
    to_csv,
    to_latex,
    to_markdown,
)
from tunelab.results.stats import Interval

SEEDS = [0, 1, 2, 3, 4]
BASE = [0.20, 0.22, 0.19, 0.21, 0.20]
FAR = [0.40, 0.43, 0.41, 0.39, 0.42]  # far above the baseline on every seed
NEAR = [0.21, 0.21, 0.20, 0.22, 0.20]  # within noise


def arm(name, score, params, loss=None):
    values = {"em": dict(zip(SEEDS, score, strict=True)), "params": dict.fromkeys(SEEDS, params)}
    if loss is not None:
        values["loss"] = dict(zip(SEEDS, loss, strict=True))
    return Arm(name, name, {"lr": 1e-3}, values)


COLUMNS = [
    Column("em", "Exact match", "higher"),
    Column("loss", "Loss", "lower"),
    Column("params", "Trainable", None, tested=False),
]


@pytest.fixture
def table():
    arms = [
        arm("lora", BASE, 100, loss=[1.0, 1.1, 1.0, 1.2, 1.1]),
        arm("full", FAR, 5000, loss=[0.5, 0.6, 0.5, 0.6, 0.5]),
        arm("dora", NEAR, 110, loss=[1.0, 1.1, 1.1, 1.2, 1.1]),
    ]
    return build_comparison_table(arms, COLUMNS, "lora", ["Budget: 10 examples."])


def test_holm_adjusts_paired_p_values_across_arms(table):
    p_far = sps.ttest_rel(FAR, BASE).pvalue
    p_near = sps.ttest_rel(NEAR, BASE).pvalue
    low, high = sorted([p_far, p_near])
    expected = {low: min(1, 2 * low), high: max(min(1, 2 * low), high)}  # Holm with m=2, by hand
    full, dora = table.cells[1][0], table.cells[2][0]
    assert full.p_value == pytest.approx(p_far) and full.p_holm == pytest.approx(expected[p_far])
    assert dora.p_holm == pytest.approx(expected[p_near])
    assert full.significant and not dora.significant
    assert table.cells[0][0].p_value is None  # the baseline is not tested against itself


def test_best_follows_the_declared_direction(table):
    assert [line[0].best for line in table.cells] == [False, True, False]  # highest exact match
    assert [line[1].best for line in table.cells] == [False, True, False]  # lowest loss
    assert not any(line[2].best for line in table.cells)  # no direction: no "best" parameter count


def test_seed_invariant_resources_get_no_interval_nor_mark(table):
    text = cell_text(table.cells[1][2], COLUMNS[2], "markdown")
    assert text == "5,000" and "±" not in text and "†" not in text


def test_significance_mark_in_markdown(table):
    md = to_markdown(table)
    row = next(line for line in md.splitlines() if line.startswith("| full"))
    assert "†" in row and "Holm" in md and "Budget: 10 examples." in md
    assert "| Exact match ↑ | Loss ↓ | Trainable |" in md


def test_digits_match_the_interval():
    # half-width 0.01234 -> two significant digits (0.012) -> mean to 3 decimals
    assert decimals_for(Interval(0.21345, 0.01234, 5, 0.01), 1.0) == 3
    assert decimals_for(Interval(213.291, 1.893, 5, 1.5), 1.0) == 1  # "213.3 ± 1.9", not 213.291
    assert decimals_for(Interval(0.5, None, 1, 0.0), 1.0) == 3  # no interval: 3 significant digits
    assert decimals_for(Interval(-0.93249999999999988, 1.6e-16, 5, 1.3e-16), 1.0) == 3  # five equal -0.9325s
    cell = build_comparison_table([arm("a", BASE, 1)], COLUMNS[:1], None, []).cells[0][0]
    hw = sps.t.ppf(0.975, 4) * sps.tstd(BASE) / 5**0.5  # 0.01388... -> 0.014
    assert cell_text(cell, COLUMNS[0], "markdown") == f"**{sum(BASE) / 5:.3f} ± {hw:.3f}**"


def test_row_labels_show_only_what_differs():
    labels = differing_labels({"a": ["model=tiny", "adapter=lora"], "b": ["model=tiny", "adapter=dora"]})
    assert labels == {"a": "adapter=lora", "b": "adapter=dora"}


def test_pareto_front_by_hand():
    points = {"a": (0.9, 10.0), "b": (0.8, 5.0), "c": (0.7, 8.0), "d": (0.9, 12.0)}
    # c is beaten by b (higher score, lower cost); d by a (same score, lower cost)
    assert pareto_front(points) == {"a", "b"}
    # a loss or NLL: lower is better. c (0.7 at 8) now beats a and d (0.9 at 10 and 12); b costs least
    assert pareto_front(points, better="lower") == {"b", "c"}


def test_latex_escapes_and_scales_to_the_page(table):
    tex = to_latex(table)
    assert r"p $<$ 0.05" in tex and "p < " not in tex
    assert r"\resizebox{\ifdim\width>\textwidth\textwidth\else\width\fi}{!}" in tex and r"\toprule" in tex
    assert r"$^\dagger$" in tex


def test_csv_keeps_full_precision(table):
    lines = to_csv(table).splitlines()
    assert lines[0].startswith("arm,label,n,n_failed,tuned,dirty,em/mean,em/ci95_half_width")
    assert lines[2].startswith("full,full,5,0")


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_latex_compiles_in_a_minimal_article(table, tmp_path):
    doc = "\n".join(
        [
            r"\documentclass{article}",
            r"\usepackage{booktabs,graphicx}",
            r"\usepackage[utf8]{inputenc}",
            r"\begin{document}",
            to_latex(table),
            r"\end{document}",
        ]
    )
    (tmp_path / "t.tex").write_text(doc)
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    log = (tmp_path / "t.log").read_text(errors="replace")
    assert "Overfull \\hbox" not in log and "Missing character" not in log
