"""`python compare.py comparison=smoke` end to end, then again: the cache reruns only a failed job."""

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_script
from tunelab.world import tasks

pytestmark = pytest.mark.slow


def compare(out_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """`python compare.py comparison=smoke output_dir=OUT ARGS`, one thread per job."""
    args = ("comparison=smoke", f"output_dir={out_dir}", *args)
    return run_script("compare.py", list(args), env={"OMP_NUM_THREADS": "1"})


def item_prompts(split: str) -> set[str]:
    return {ex.prompt for task in ("arithmetic", "reverse") for ex in tasks.load_split(task, split)}


def sample_prompts(run_dir: Path) -> set[str]:
    lines = (run_dir / "samples.jsonl").read_text().splitlines()
    # "<|user|>What is 40+15?<|end|><|assistant|>" -> "What is 40+15?"
    return {json.loads(line)["prompt"].split("<|user|>")[1].split("<|end|>")[0] for line in lines}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp") / "smoke"
    return out, compare(out)


def test_every_stage_leaves_its_folder(smoke):
    out, proc = smoke
    assert "8 jobs: 0 reused, 8 run, 0 failed" in proc.stdout
    for arm in ("lora", "full"):
        assert sorted(p.name for p in (out / "tune" / arm).iterdir()) == ["trial0", "trial1"]
        assert sorted(p.name for p in (out / "confirm" / arm).iterdir()) == ["seed0", "seed1"]
    for name in ("table.md", "table.tex", "table.csv", "tuning.md", "pareto.png", "loss.png"):
        assert (out / "report" / name).stat().st_size > 0
    rows = [line for line in (out / "report" / "table.md").read_text().splitlines() if "adapter=" in line]
    # label (only what differs; * marks a dirty git tree) and n per row
    assert [(r.split("|")[1].strip().rstrip("*"), r.split("|")[2].strip()) for r in rows] == [
        ("adapter=lora", "2"),
        ("adapter=full", "2"),
    ]


def test_tune_scored_validation_items_and_confirm_test_items(smoke):
    out, _ = smoke
    validation, test = item_prompts("validation"), item_prompts("test")
    for arm in ("lora", "full"):
        tuned = set().union(*(sample_prompts(out / "tune" / arm / t) for t in ("trial0", "trial1")))
        confirmed = sample_prompts(out / "confirm" / arm / "seed0")
        assert tuned <= validation and not tuned & test
        assert confirmed <= test


def test_equal_budget_and_provenance_in_every_run(smoke):
    out, _ = smoke
    for metrics_file in out.glob("*/*/*/metrics.json"):
        metrics = json.loads(metrics_file.read_text())
        assert metrics["train_steps"] * 8 == 24  # smoke: 24 examples, batch 8, both arms
        assert len(metrics["data_sha256"]) == 64
        assert set(metrics["provenance"]) == {"git", "packages", "hardware", "config_sha256", "named_files"}


def test_rerun_reuses_completed_jobs_and_reruns_a_failed_one(smoke):
    out, _ = smoke
    failed = out / "confirm" / "full" / "seed1" / "metrics.json"
    failed.write_text(json.dumps(json.loads(failed.read_text()) | {"status": "failed"}))
    proc = compare(out)
    assert "tune: 4 of 4 jobs reused" in proc.stdout
    assert "confirm: 3 of 4 jobs reused" in proc.stdout
    assert "8 jobs: 7 reused, 1 run, 0 failed" in proc.stdout
    assert json.loads(failed.read_text())["status"] == "completed"
    assert (out / "confirm" / "full" / "seed1.old1" / "metrics.json").is_file()
