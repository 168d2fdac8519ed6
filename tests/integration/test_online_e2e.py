"""Online objectives end to end through train.py: GRPO's mean reward rises; PPO and SPIN run."""

from __future__ import annotations

import csv

import pytest

from tests.conftest import read_metrics, run_train

pytestmark = pytest.mark.slow

SHORT = [
    "eval=none",
    "data.train.size=64",
    "data.batch_size=4",
    "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=1",
    "optimizer.scheduler.num_warmup_steps=2",
    "checkpoint_every=1000",
    "objective.generation.max_new_tokens=6",
]
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # the tiny model trains faster on one thread of a busy machine


def logged(run_dir, key: str) -> list[float]:
    """A metric's per-step values from the run's CSV log."""
    rows = list(csv.DictReader(next(run_dir.rglob("metrics.csv")).open()))
    return [float(r[key]) for r in rows if r.get(key)]


def test_grpo_mean_reward_rises_with_a_user_reward_function(tmp_path):
    # The user's reward (module:function) pays for digits; the base model answers mostly in letters.
    run_train(
        [
            "objective=grpo",
            *SHORT,
            "trainer.max_steps=14",
            "lr=5e-3",
            "objective.group_size=4",
            "objective.rewards=[tests.integration.online_rewards:digit_share]",
            f"hydra.run.dir={tmp_path}",
        ],
        env=ONE_THREAD,
    )
    metrics = read_metrics(tmp_path)
    assert metrics["status"] == "completed"
    rewards = logged(tmp_path, "train/reward_mean")
    assert len(rewards) == 14
    first, last = sum(rewards[:4]) / 4, sum(rewards[-4:]) / 4
    assert last > first + 0.2, rewards
    for key in ("kl", "clip_fraction", "completion_length", "reward_std", "generation_share"):
        assert f"train/{key}" in metrics
    assert 0 < metrics["online/generation_share"] < 1
    assert metrics["online/reward_mean_last"] > metrics["online/reward_mean_first"]


@pytest.mark.parametrize("objective", ["ppo", "spin"])
def test_online_objective_trains_and_saves_its_run(objective, tmp_path):
    # PPO with a reward that is non-zero from the start, so its value head has returns to fit.
    extra = ["objective.rewards=[tests.integration.online_rewards:digit_share]"] if objective == "ppo" else []
    run_train(
        [f"objective={objective}", *SHORT, "trainer.max_steps=4", *extra, f"hydra.run.dir={tmp_path}"],
        env=ONE_THREAD,
    )
    metrics = read_metrics(tmp_path)
    assert metrics["status"] == "completed" and metrics["train_steps"] == 4
    assert metrics["train/generation_share"] > 0
    assert (tmp_path / "config.yaml").is_file() and (tmp_path / metrics["artifact"]).is_dir()
    if objective == "ppo":  # the zero-initialised value head learned from the returns
        from safetensors.torch import load_file

        head = load_file(tmp_path / "value_head.safetensors")
        assert any(t.abs().sum() > 0 for name, t in head.items() if name.endswith("weight")), head.keys()
        assert metrics["train/value_loss"] > 0 and metrics["train/reward_mean"] > 0
    else:
        assert metrics["train_loss_initial"] == pytest.approx(0.6931, abs=1e-3)  # policy = t-1 model: ln 2
