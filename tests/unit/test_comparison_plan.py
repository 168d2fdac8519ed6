"""compare.py's plan: equal budgets, equal trials, the splits each stage reads, the result cache."""

import copy
import functools
import json
from datetime import timedelta
from pathlib import Path

import lightning
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Timer
from transformers import AutoTokenizer

from tunelab.core.config import ConfigError
from tunelab.core.provenance import named_files
from tunelab.results import comparison
from tunelab.results.comparison import TrainConfigs, plan_stage, run_stage
from tunelab.world import asset_path, tasks

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = TrainConfigs(ROOT / "conf")


def compare_cfg(*overrides: str):
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose("compare", overrides=list(overrides))


@functools.cache
def _smoke_tune():
    return plan_stage(compare_cfg("comparison=smoke"), CONFIGS, "tune")


def smoke_tune():
    """The smoke comparison's tune jobs (planned once; each test gets its own copy)."""
    return copy.deepcopy(_smoke_tune())


def with_base(cfg, *extra: str):
    """The comparison with overrides appended to its shared base."""
    cfg.comparison.base = [*cfg.comparison.base, *extra]
    return cfg


def override_value(job, key):
    return [o.split("=", 1)[1] for o in job.overrides if o.startswith(key + "=")][-1]


def test_equal_examples_across_arms_with_different_batch_shapes():
    cfg = compare_cfg("comparison=smoke", "comparison.budget.examples=64", "comparison.baseline=null")
    cfg.comparison.arms = {
        "a": ["data.batch_size=8"],
        "b": ["data.batch_size=16", "trainer.accumulate_grad_batches=2"],
    }
    jobs = plan_stage(cfg, CONFIGS, "tune")
    assert {j.arm for j in jobs} == {"a", "b"}
    for job in jobs:
        composed = CONFIGS.compose(job.overrides)
        per_step = composed.data.batch_size * composed.trainer.accumulate_grad_batches
        assert composed.trainer.max_steps * per_step == 64  # 8 steps x 8, 2 steps x 32
    assert {override_value(j, "trainer.max_steps") for j in jobs} == {"8", "2"}


def test_equal_tokens_across_arms_with_different_batch_shapes_and_a_wall_clock_stop():
    cfg = compare_cfg("comparison=smoke", "comparison.budget.tokens=4000", "comparison.budget.seconds=3690")
    cfg.comparison.baseline = None
    cfg.comparison.arms = {
        "a": ["data.batch_size=8"],
        "b": ["data.batch_size=16", "trainer.accumulate_grad_batches=2"],
    }
    tokenizer = AutoTokenizer.from_pretrained(asset_path("tiny-llama"))
    steps = {}
    for job in plan_stage(cfg, CONFIGS, "tune", hashes=False)[::2]:  # one trial per arm
        composed = CONFIGS.compose(job.overrides)
        records = instantiate(composed.data.train)  # counted here with the tokenizer's own template
        mean = sum(
            len(tokenizer.apply_chat_template(r["messages"], return_dict=True)["input_ids"]) for r in records
        ) / len(records)
        per_step = composed.data.batch_size * composed.trainer.accumulate_grad_batches
        steps[job.arm] = composed.trainer.max_steps
        assert abs(steps[job.arm] * per_step * mean - 4000) <= per_step * mean / 2  # the nearest step
        trainer = lightning.Trainer(max_time=composed.trainer.max_time, logger=False)  # Lightning reads it
        timer = next(c for c in trainer.callbacks if isinstance(c, Timer))
        assert timer.time_remaining() == timedelta(hours=1, seconds=90).total_seconds()
    assert steps["a"] > 3 * steps["b"]  # 4x the examples per step: about a quarter of the steps


def test_budget_that_does_not_divide_is_a_config_error():
    cfg = compare_cfg("comparison=smoke", "comparison.budget.examples=20")  # batch 8
    with pytest.raises(ConfigError, match=r"budget\.examples=20"):
        plan_stage(cfg, CONFIGS, "tune")


def test_equal_trials_with_lr_relative_to_each_arms_default():
    jobs = smoke_tune()
    lrs = {arm: sorted(j.setting["lr"] for j in jobs if j.arm == arm) for arm in ("lora", "full")}
    # conf/adapter/lora.yaml lr 1e-3, full.yaml 3e-4; smoke's factors [1, 3]
    assert lrs["lora"] == pytest.approx([1e-3, 3e-3]) and lrs["full"] == pytest.approx([3e-4, 9e-4])


def test_larger_grid_is_sampled_to_the_same_trial_count_and_smaller_refused():
    cfg = compare_cfg("comparison=smoke", "comparison.tune.space.lr=[0.5,1,2,4]")
    jobs = plan_stage(cfg, CONFIGS, "tune")
    assert [sum(j.arm == a for j in jobs) for a in ("lora", "full")] == [2, 2]
    with pytest.raises(ConfigError, match="same number of trials"):
        plan_stage(compare_cfg("comparison=smoke", "comparison.tune.trials=3"), CONFIGS, "tune")


def splits_read(jobs, monkeypatch) -> set[str]:
    """Every tiny-world split the jobs' training data and evaluations read."""
    read = set()
    original = tasks.load_split

    def spy(task, split):
        read.add(split)
        return original(task, split)

    monkeypatch.setattr(tasks, "load_split", spy)
    tokenizer = AutoTokenizer.from_pretrained(asset_path("tiny-llama"))
    for job in jobs:
        cfg = CONFIGS.compose(job.overrides)
        instantiate(cfg.data.train)
        for spec in cfg.eval.tasks.values():
            task = instantiate(spec)
            task.prompts(tokenizer) if hasattr(task, "prompts") else task.load_texts()
    return read


def test_tune_never_reads_the_test_split(monkeypatch):
    cfg = with_base(compare_cfg("comparison=smoke"), "eval.split=test")  # even if the base asks for test
    assert splits_read(plan_stage(cfg, CONFIGS, "tune"), monkeypatch) == {"fit", "validation"}


def test_an_eval_task_without_a_validation_split_is_refused_while_tuning():
    cfg = with_base(compare_cfg("comparison=smoke"), "eval=lmeval")  # lm-eval reads test items
    with pytest.raises(ConfigError, match=r"eval\.tasks\.lm_eval has split=None"):
        plan_stage(cfg, CONFIGS, "tune", hashes=False)


def test_confirm_scores_on_test(monkeypatch):  # the spy does see test reads: the test above can fail
    jobs = plan_stage(compare_cfg("comparison=smoke"), CONFIGS, "confirm", {"lora": {}, "full": {}})
    assert splits_read(jobs, monkeypatch) == {"fit", "test"}


def test_validation_is_carved_from_train_and_disjoint_from_fit_and_test():
    for task in tasks.task_names():
        train, test = tasks.load_split(task, "train"), tasks.load_split(task, "test")
        val, fit = tasks.load_split(task, "validation"), tasks.load_split(task, "fit")
        assert val + fit == train
        assert len(val) == tasks.VALIDATION_SIZE or task not in tasks.UNIVERSES  # facts: its own sizes
        assert not {e.prompt for e in val} & {e.prompt for e in test}


def fake_run(out_dir: Path, rel: str, job, status: str) -> None:
    """A run directory whose provenance is that of `job` (its config hash and named files)."""
    run = out_dir / rel
    run.mkdir(parents=True)
    files = named_files(CONFIGS.compose(job.overrides))
    record = {"config_sha256": job.config_sha256, "named_files": files}
    (run / "metrics.json").write_text(json.dumps({"status": status, "provenance": record}))


@pytest.fixture
def launched(monkeypatch):
    calls = []
    monkeypatch.setattr(comparison, "launch", lambda jobs, *a: calls.append([j.subdir for j in jobs]) or 0)
    return calls


def test_cache_reuses_completed_runs_and_reruns_failed_ones(tmp_path, launched):
    jobs = smoke_tune()
    fake_run(tmp_path, "tune/lora/trial0", jobs[0], "completed")
    fake_run(tmp_path, "elsewhere/x", jobs[1], "completed")  # found anywhere in the folder
    fake_run(tmp_path, "tune/full/trial0", jobs[2], "failed")
    run_stage(jobs, tmp_path, force=False, launcher=None, root=ROOT)
    assert launched == [["full/trial0", "full/trial1"]]
    assert [j.reused for j in jobs] == [True, True, False, False]
    assert jobs[1].run_dir == "elsewhere/x"
    assert (tmp_path / "tune/full/trial0.old1/metrics.json").is_file()  # the failed run is kept aside


def test_a_reused_run_is_kept_clear_of_a_new_job_written_in_its_folder(tmp_path, launched):
    jobs = smoke_tune()  # lora trial0 (lr 1x), trial1 (3x); full the same
    fake_run(tmp_path, "tune/lora/trial0", jobs[0], "completed")
    (tmp_path / "tune/lora/trial0/marker").write_text("the 1x run")
    shifted = plan_stage(
        compare_cfg("comparison=smoke", "comparison.tune.space.lr=[0.5,1.0]"), CONFIGS, "tune"
    )
    assert shifted[1].cache_key == jobs[0].cache_key  # lr 1x is now trial1; trial0 is new (0.5x)
    run_stage(shifted, tmp_path, force=False, launcher=None, root=ROOT)
    assert launched == [["lora/trial0", "full/trial0", "full/trial1"]]
    assert shifted[1].reused and shifted[1].run_dir == "tune/lora/trial0.kept1"
    assert (tmp_path / shifted[1].run_dir / "marker").read_text() == "the 1x run"
    assert not (tmp_path / "tune/lora/trial0").exists()  # free for the new trial0


def test_force_reruns_everything(tmp_path, launched):
    jobs = smoke_tune()
    for job in jobs:
        fake_run(tmp_path, f"tune/{job.subdir}", job, "completed")
    run_stage(jobs, tmp_path, force=True, launcher=None, root=ROOT)
    assert launched == [[j.subdir for j in jobs]] and not any(j.reused for j in jobs)


def test_a_changed_config_is_not_reused(tmp_path, launched):
    jobs = smoke_tune()
    fake_run(tmp_path, "tune/lora/trial0", jobs[0], "completed")
    changed = plan_stage(with_base(compare_cfg("comparison=smoke"), "data.train.size=32"), CONFIGS, "tune")
    run_stage(changed, tmp_path, force=False, launcher=None, root=ROOT)
    assert len(launched[0]) == 4


def test_an_edited_file_under_the_same_path_is_not_reused(tmp_path, launched):
    template = tmp_path / "chat.jinja"  # a file the run reads, named by path in its config
    template.write_text("{% for m in messages %}{{ m.content }}{% endfor %}")
    cfg = with_base(compare_cfg("comparison=smoke"), f"model.chat_template={template}")
    jobs = plan_stage(cfg, CONFIGS, "tune")
    assert all(j.cache_key for j in jobs)
    fake_run(tmp_path / "runs", "tune/lora/trial0", jobs[0], "completed")
    run_stage(plan_stage(cfg, CONFIGS, "tune"), tmp_path / "runs", force=False, launcher=None, root=ROOT)
    assert len(launched[-1]) == 3  # the unchanged file: trial0 reused
    template.write_text("{% for m in messages %}{{ m.role }}{{ m.content }}{% endfor %}")  # same path
    edited = plan_stage(cfg, CONFIGS, "tune")
    assert [j.config_sha256 for j in edited] == [j.config_sha256 for j in jobs]
    run_stage(edited, tmp_path / "runs", force=False, launcher=None, root=ROOT)
    assert len(launched[-1]) == 4


def test_wandb_jobs_carry_group_stage_and_arm(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    jobs = plan_stage(compare_cfg("comparison=smoke", "job_overrides=['logger=wandb']"), CONFIGS, "tune")
    cfg = CONFIGS.compose(jobs[0].overrides)
    cfg.logger.wandb.name = "job"  # the yaml's name reads Hydra's job state, absent here
    logger = instantiate(cfg.logger.wandb, save_dir=str(tmp_path))
    run = logger.experiment  # an offline run: what W&B records, written under tmp_path
    try:
        assert run.group == "smoke" and run.job_type == "tune"
        # the yaml's own tags (adapter, objective, data source), then the arm, stage and comparison
        assert list(run.tags) == ["lora", "sft", cfg.data.source, "lora", "tune", "smoke"]
    finally:
        run.finish()


@pytest.mark.parametrize("preset", sorted(p.stem for p in (ROOT / "conf" / "comparison").glob("*.yaml")))
def test_every_preset_plans_equal_trials_within_its_budget(preset):
    cfg = compare_cfg(f"comparison={preset}")
    jobs = plan_stage(cfg, CONFIGS, "tune", hashes=False)  # composes each arm with its split overrides
    per_arm = {arm: len({j.trial for j in jobs if j.arm == arm}) for arm in cfg.comparison.arms}
    assert set(per_arm.values()) == {cfg.comparison.tune.trials}
    runs_per_trial = len(cfg.comparison.tune.seeds or [cfg.comparison.tune.seed])
    assert len(jobs) == len(per_arm) * cfg.comparison.tune.trials * runs_per_trial
    assert all("eval.split=validation" in j.overrides for j in jobs)


def test_tune_seeds_run_every_trial_once_per_seed():
    jobs = plan_stage(
        compare_cfg("comparison=smoke", "comparison.tune.seeds=[3,5]"), CONFIGS, "tune", hashes=False
    )
    lora = [j for j in jobs if j.arm == "lora"]
    assert [j.key for j in lora] == ["trial0_seed3", "trial0_seed5", "trial1_seed3", "trial1_seed5"]
    assert [override_value(j, "seed") for j in lora] == ["3", "5", "3", "5"]
    assert [j.trial for j in lora] == ["trial0", "trial0", "trial1", "trial1"]
    assert lora[0].setting == lora[1].setting != lora[2].setting == lora[3].setting
    assert [j.key for j in smoke_tune() if j.arm == "lora"] == ["trial0", "trial1"]  # seeds: null
    with pytest.raises(ConfigError, match=r"comparison.tune.seeds=\[\]: expected a non-empty list"):
        plan_stage(compare_cfg("comparison=smoke", "comparison.tune.seeds=[]"), CONFIGS, "tune", hashes=False)


def test_best_trial_is_the_best_mean_over_its_seeds_and_a_failed_seed_drops_the_trial(tmp_path):
    jobs = plan_stage(
        compare_cfg("comparison=smoke", "comparison.tune.seeds=[0,1]"), CONFIGS, "tune", hashes=False
    )
    lora = [j for j in jobs if j.arm == "lora"]
    # trial0 has the single best run (0.9) but mean 0.5; trial1 has mean 0.6
    scores = {"trial0_seed0": 0.9, "trial0_seed1": 0.1, "trial1_seed0": 0.6, "trial1_seed1": 0.6}

    def write(failed: str = "") -> None:
        for job in lora:
            job.run_dir, job.status = job.subdir, "failed" if job.key == failed else "completed"
            (tmp_path / job.run_dir).mkdir(parents=True, exist_ok=True)
            metrics = {"status": job.status, "m": scores[job.key]}
            (tmp_path / job.run_dir / "metrics.json").write_text(json.dumps(metrics))

    write()
    best = comparison.best_settings(lora, tmp_path, "m", "higher")["lora"]
    assert best["trial"] == "trial1" and best["score"] == pytest.approx((0.6 + 0.6) / 2)
    assert best["setting"] == lora[2].setting
    write(failed="trial1_seed1")
    best = comparison.best_settings(lora, tmp_path, "m", "higher")["lora"]
    assert best["trial"] == "trial0" and best["score"] == pytest.approx((0.9 + 0.1) / 2)
    assert comparison.best_settings(lora, tmp_path, "m", "lower")["lora"]["trial"] == "trial0"
