"""Result tables: statistics by hand, golden renderings of fixed metrics files."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest
from scipy import stats as scipy_stats

from tunelab.results.collect import Row, Run, collect_runs, group_rows
from tunelab.results.table import build_table, to_csv, to_latex, to_markdown

DATA = Path(__file__).resolve().parents[1] / "data" / "table_runs"
GOLDEN = Path(__file__).resolve().parents[1] / "golden"
METRICS = ["eval/arithmetic/exact_match", "train_loss_final"]
BASELINE = "adapter=lora rank=8"


@pytest.fixture
def table():
    return build_table(group_rows(collect_runs(DATA)), METRICS, baseline=BASELINE)


def test_rows_group_seeds_and_count_failures(table):
    labels = [r.label for r in table.rows]
    assert labels == ["adapter=lora rank=8", "adapter=lora rank=16", "adapter=full"]
    assert [len(r.completed) for r in table.rows] == [3, 3, 2]
    assert [r.n_failed for r in table.rows] == [0, 0, 1]


def test_cells_match_a_hand_computation(table):
    rank16 = table.cells[1][0]
    values = [0.70, 0.80, 0.78]  # the fixed files of adapter=lora rank=16
    assert math.isclose(rank16.summary.mean, sum(values) / 3)
    assert math.isclose(rank16.summary.std, statistics.stdev(values))
    # Paired t by hand: differences to the rank-8 baseline, seed by seed.
    diffs = [0.70 - 0.50, 0.80 - 0.60, 0.78 - 0.55]
    t = statistics.mean(diffs) / (statistics.stdev(diffs) / math.sqrt(3))
    p = 2 * scipy_stats.t.sf(abs(t), df=2)
    assert math.isclose(rank16.p_value, p, rel_tol=1e-6) and rank16.significant
    assert table.cells[2][0].p_value > 0.05 and not table.cells[2][0].significant


def test_best_is_max_for_scores_and_min_for_losses(table):
    assert [row[0].best for row in table.cells] == [False, True, False]
    assert [row[1].best for row in table.cells] == [False, False, True]


@pytest.mark.parametrize(
    ("render", "name"), [(to_markdown, "table.md"), (to_latex, "table.tex"), (to_csv, "table.csv")]
)
def test_golden_renderings(table, render, name):
    assert render(table) == (GOLDEN / name).read_text()


def test_unknown_baseline_names_the_rows():
    with pytest.raises(ValueError, match=r"baseline row .adapter=dora. not found"):
        build_table(group_rows(collect_runs(DATA)), METRICS, baseline="adapter=dora")


def _row(label: str) -> Row:
    run = Run(
        path=Path(label), metrics={"status": "completed", "seed": 0, "overrides": label.split(), "x": 1.0}
    )
    return Row(label=label, runs=[run])


def test_shared_overrides_leave_the_labels_and_a_subset_names_the_baseline():
    rows = [_row("adapter=lora trainer.max_steps=200"), _row("adapter=dora trainer.max_steps=200")]
    table = build_table(rows, ["x"], baseline="adapter=lora")
    assert [table.label(r) for r in rows] == ["adapter=lora", "adapter=dora"]
    assert table.baseline == "adapter=lora" and "Every row: trainer.max_steps=200." in table.caption()
    # Several rows match: the error names them, so the user sees which override tells them apart.
    with pytest.raises(ValueError, match=r"matches 2 rows: \['adapter=lora trainer.max_steps=200', 'ad"):
        build_table(rows, ["x"], baseline="trainer.max_steps=200")
