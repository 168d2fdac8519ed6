"""scripts/keep_comparison.py keeps exactly the files the manifests name, reused runs included."""

from __future__ import annotations

import json
from pathlib import Path

from scripts.keep_comparison import keep


def test_keeps_the_manifest_runs_the_report_and_nothing_else(tmp_path: Path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    for run in ("tune/a/trial0", "tune/a/trial0.kept1", "confirm/a/seed0", "confirm/a/seed1.old1"):
        (src / run).mkdir(parents=True)
        for name in ("config.yaml", "metrics.csv", "metrics.json", "samples.jsonl", "last.ckpt"):
            (src / run / name).write_text(run)
    (src / "report").mkdir()
    (src / "report" / "table.md").write_text("|")
    (src / "comparison.yaml").write_text("name: x")
    (src / "tune" / "best.json").write_text("{}")
    (src / "tune" / "manifest.json").write_text(json.dumps([{"run_dir": "tune/a/trial0.kept1"}]))
    (src / "confirm" / "manifest.json").write_text(
        json.dumps([{"run_dir": "confirm/a/seed0"}, {"run_dir": ""}])
    )
    copied = keep(src, dst)
    got = sorted(str(p.relative_to(dst)) for p in dst.rglob("*") if p.is_file())
    runs = [
        f"{r}/{n}"
        for r in ("confirm/a/seed0", "tune/a/trial0.kept1")
        for n in ("config.yaml", "metrics.csv", "metrics.json")
    ]
    expected = sorted(
        [
            "comparison.yaml",
            "report/table.md",
            "tune/best.json",
            "tune/manifest.json",
            "confirm/manifest.json",
            *runs,
        ]
    )
    assert got == expected and copied == len(expected)
