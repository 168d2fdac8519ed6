"""tunelab table preset=adapters: the README adapter table from a sweep's metrics.json files."""

from __future__ import annotations

import json
from pathlib import Path

MB = 2**20


def _load_script():
    from tunelab.results import adapter_table

    return adapter_table


def _write_run(sweep: Path, job: str, **metrics) -> None:
    run = sweep / job
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps(metrics))


def _metrics(adapter: str, status: str = "completed") -> dict:
    return {
        "adapter": adapter, "status": status, "trainable_percent": 6.125,
        "weight_bytes": 3 * MB, "grad_bytes": MB // 2, "optimizer_state_bytes": MB,
        "baseline/arithmetic/exact_match": 0.0, "eval/arithmetic/exact_match": 0.25,
        "eval/reverse/exact_match": 0.5, "train_loss_final": 0.12345,
        "train_tokens": 6000, "train_tokens_per_sec": 50.0,
    }  # fmt: skip


def test_rows_in_job_order_with_hand_computed_columns(tmp_path: Path) -> None:
    table = _load_script()
    _write_run(tmp_path, "10_adapter=dora", **_metrics("dora"))
    _write_run(tmp_path, "2_adapter=lora", **_metrics("lora"))
    _write_run(tmp_path, "3_adapter=ia3", **_metrics("ia3", status="failed"))
    lines = table.markdown(table.collect(tmp_path)).splitlines()
    assert len(lines) == 4  # header, rule, the two completed runs (the failed one is left out)
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    # job 2 before job 10 (numeric, not string, order); 3 + 0.5 + 1 MB; 6000 tokens / 50 per s
    assert cells == ["lora", "6.12", "3.00", "0.50", "1.00", "4.50", "0.00 → 0.25", "0.50", "0.123", "120"]
    assert lines[3].startswith("| dora |")


def test_no_completed_runs_is_an_error(tmp_path: Path, capsys) -> None:
    from tunelab.cli import main

    _write_run(tmp_path, "0_adapter=lora", **_metrics("lora", status="failed"))
    assert main(["table", "preset=adapters", f"results={tmp_path}"]) == 1
    assert "no completed runs" in capsys.readouterr().err


def test_the_preset_writes_the_table_through_the_command(tmp_path: Path) -> None:
    from tunelab.cli import main

    _write_run(tmp_path, "0_adapter=lora", **_metrics("lora"))
    assert main(["table", "preset=adapters", f"results={tmp_path}", f"out={tmp_path / 't'}"]) == 0
    assert (tmp_path / "t" / "adapters.md").read_text().count("| lora |") == 1
    assert main(["table", "preset=nope", f"results={tmp_path}"]) == 2
