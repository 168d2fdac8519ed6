"""Copy what a comparison's table traces back to into a folder small enough to commit.

    python scripts/keep_comparison.py /tmp/cmp_adapters results/examples/comparisons/adapters

Keeps comparison.yaml, report/, each stage's jobs.json, manifest.json and best.json, and for every
run a manifest names (reused or not): config.yaml, metrics.csv and metrics.json — not checkpoints,
samples or logs.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

RUN_FILES = ("config.yaml", "metrics.csv", "metrics.json")
STAGE_FILES = ("jobs.json", "manifest.json", "best.json")


def kept_files(src: Path) -> list[Path]:
    """Paths under `src` (relative) that the table and its runs need."""
    files = [Path("comparison.yaml")] + [
        p.relative_to(src) for p in (src / "report").glob("*") if p.is_file()
    ]
    for stage in ("tune", "confirm"):
        files += [Path(stage, name) for name in STAGE_FILES if (src / stage / name).is_file()]
        manifest = src / stage / "manifest.json"
        for job in json.loads(manifest.read_text()) if manifest.is_file() else []:
            if job.get("run_dir"):
                files += [
                    Path(job["run_dir"], name)
                    for name in RUN_FILES
                    if (src / job["run_dir"] / name).is_file()
                ]
    return sorted(set(files))


def keep(src: Path, dst: Path) -> int:
    """Copy `kept_files(src)` to `dst`; returns how many files were copied."""
    files = kept_files(src)
    for rel in files:
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, dst / rel)
    return len(files)


if __name__ == "__main__":
    print(f"{keep(Path(sys.argv[1]), Path(sys.argv[2]))} files copied to {sys.argv[2]}")
