"""compare.py's Optuna tune stage: the same number of trials per arm inside the searched range,
scores told back round by round, a failed trial skipped, the same points for the same seed."""

import json
import math
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from tunelab.results import comparison
from tunelab.results.comparison import TrainConfigs, best_settings
from tunelab.results.tuning_optuna import optuna_tune

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = TrainConfigs(ROOT / "conf")
METRIC = "eval/arithmetic/exact_match"


def score(lr: float) -> float:
    """The fake validation score: highest at lr = 2e-3, falling with the log-distance from it."""
    return -abs(math.log10(lr / 2e-3))


def fake_launch(jobs, sweep_dir, launcher, root):
    """Write each job's metrics.json as a run would; full/trial1 fails."""
    for job in jobs:
        run = sweep_dir / job.subdir
        run.mkdir(parents=True)
        failed = job.subdir == "full/trial1"
        metrics = {"status": "failed" if failed else "completed", METRIC: score(job.setting["lr"])}
        (run / "metrics.json").write_text(json.dumps(metrics))
    return 0


def tune(out_dir: Path) -> list:
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "compare",
            ["comparison=smoke", "comparison.tune.method=optuna", "comparison.tune.trials=4",
             "comparison.tune.space.lr=[0.1,10.0]", f"output_dir={out_dir}"],
        )  # fmt: skip
    return optuna_tune(cfg, CONFIGS, out_dir, ROOT, hashes=False)


def test_optuna_gives_every_arm_the_same_trials_in_range_and_keeps_the_best(tmp_path, monkeypatch):
    monkeypatch.setattr(comparison, "launch", fake_launch)
    jobs = tune(tmp_path / "a")
    defaults = {"lora": 1e-3, "full": 3e-4}  # conf/adapter/{lora,full}.yaml
    for arm, default in defaults.items():
        mine = [j for j in jobs if j.arm == arm]
        assert [j.key for j in mine] == ["trial0", "trial1", "trial2", "trial3"]
        assert all(0.1 * default <= j.setting["lr"] <= 10 * default for j in mine)
        completed = [j for j in mine if j.status == "completed"]
        assert len(completed) == (3 if arm == "full" else 4)
        best = best_settings(jobs, tmp_path / "a", METRIC, "higher")[arm]
        by_hand = max(completed, key=lambda j: score(j.setting["lr"]))
        assert best["setting"] == by_hand.setting and best["score"] == pytest.approx(
            score(by_hand.setting["lr"])
        )
    manifest = json.loads((tmp_path / "a" / "tune" / "manifest.json").read_text())
    assert len(manifest) == 8  # every round's jobs, not only the last round's
    again = tune(tmp_path / "b")  # same seed, same scores: the same points
    assert [j.setting for j in again] == [j.setting for j in jobs]
