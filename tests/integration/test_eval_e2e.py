"""lm-eval and perplexity through train.py (before/after/deltas) and eval.py (saved run, base rows)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import SMALL_RUN, read_metrics, run_script, run_train
from tunelab.results.collect import collect_runs, group_rows

# The same eval for every command, so that the scores can be compared across them (SMALL_RUN
# already sets the built-in tasks' limits for train.py).
EVAL = ["eval=lmeval", "eval.tasks.lm_eval.limit=8", "eval.tasks.heldout.n_docs=10"]
EVAL_PY = [*EVAL, "eval.tasks.arithmetic.limit=16", "eval.tasks.reverse.limit=16"]
SCORES = [
    "arithmetic/exact_match",
    "reverse/exact_match",
    "heldout/perplexity",
    "tiny_arithmetic/exact_match",
    "tiny_arithmetic_mc/acc",
    "tiny_reverse/exact_match",
]


def run_eval(args: list[str]) -> None:
    """`python eval.py ARGS` in a subprocess; fails the test with its output if it fails."""
    run_script("eval.py", args)


@pytest.mark.slow
def test_train_eval_and_eval_py_agree(tmp_path: Path):
    run_dir, again, base = tmp_path / "run", tmp_path / "again", tmp_path / "base"
    run_train([*SMALL_RUN, *EVAL, f"hydra.run.dir={run_dir}"])
    trained = read_metrics(run_dir)
    assert trained["eval/tiny_reverse/n"] == 8
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    lm_tasks = {(s["phase"], s["lm_eval_task"]) for s in samples if "lm_eval_task" in s}
    assert ("baseline", "tiny_arithmetic_mc") in lm_tasks and ("eval", "tiny_reverse") in lm_tasks

    # The saved run, rebuilt from config.yaml + adapter/: the same model, so the same scores.
    run_eval([f"run_dir={run_dir}", *EVAL_PY, f"hydra.run.dir={again}"])
    reloaded = read_metrics(again)
    assert reloaded["source_run"] == str(run_dir.resolve()) and reloaded["adapter"] == "lora"
    for score in SCORES:
        assert reloaded[f"eval/{score}"] == pytest.approx(trained[f"eval/{score}"], rel=1e-5)

    # The base model without training scores what the run's baseline scored.
    run_eval([*EVAL_PY, f"hydra.run.dir={base}"])
    untrained = read_metrics(base)
    for score in SCORES:
        assert untrained[f"eval/{score}"] == pytest.approx(trained[f"baseline/{score}"], rel=1e-5)
        # The run's delta against two other processes' scores: the reloaded run and the bare base.
        delta = reloaded[f"eval/{score}"] - untrained[f"eval/{score}"]
        assert trained[f"delta/{score}"] == pytest.approx(delta, abs=1e-4)
    assert (base / "config.yaml").is_file() and (base / "samples.jsonl").is_file()

    # Tables: the re-evaluated run keeps its training configuration's label; the base row is its
    # own configuration, labelled as untrained.
    rows = {row.label: row for row in group_rows(collect_runs(tmp_path))}
    assert len(rows) == 2
    assert [len(row.runs) for label, row in rows.items() if "train=none" in label.split()] == [1]
