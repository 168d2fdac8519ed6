"""A comparison: tune every arm on validation with equal trials, confirm the best over seeds on test.

`plan_*` turn the comparison config into jobs (one list of train.py overrides each); `run_stage`
runs the jobs a stage still needs through `train.py -m hydra/sweeper=job_list` (any Hydra
launcher) and reuses completed runs whose config hash matches (the result cache).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.utils import create_config_search_path
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from tunelab.core.config import ConfigError
from tunelab.core.provenance import cache_key, config_sha256, named_files

STAGES = ("tune", "confirm")
ARM_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass
class Job:
    """One train.py run of a stage: which arm, its key inside the arm, and its overrides."""

    stage: str
    arm: str
    key: str  # trial0, trial1, ... (tune; trial0_seed1 ... with tune.seeds) or seed0, ... (confirm)
    overrides: list[str]
    setting: dict[str, Any] = field(default_factory=dict)  # the tuned knobs' values
    seed: int = 0
    config_sha256: str = ""
    cache_key: str = ""  # config hash + the contents of the files it names (provenance.cache_key)
    run_dir: str = ""  # relative to the comparison folder
    reused: bool = False
    status: str = "planned"

    @property
    def subdir(self) -> str:
        return f"{self.arm}/{self.key}"

    @property
    def trial(self) -> str:
        """The trial a tune job belongs to (its key without the seed): the unit that is scored."""
        return self.key.split("_seed")[0]


def tune_seeds(comparison: DictConfig) -> list[int]:
    """The seeds every trial runs with: `tune.seeds` (scored by their mean), else `tune.seed`."""
    seeds = comparison.tune.get("seeds")
    if seeds is None:
        return [int(comparison.tune.seed)]
    if isinstance(seeds, (int, str)) or len(seeds) == 0:
        raise ConfigError(f"comparison.tune.seeds={seeds!r}: expected a non-empty list of seeds, or null")
    return [int(s) for s in seeds]


def trial_keys(number: int, seeds: list[int]) -> list[tuple[str, int]]:
    """`(key, seed)` of each run of trial `number`: `trialN` alone, `trialN_seedS` per seed."""
    if len(seeds) == 1:
        return [(f"trial{number}", seeds[0])]
    return [(f"trial{number}_seed{seed}", seed) for seed in seeds]


class TrainConfigs:
    """Composes train.yaml with overrides, as `train.py` would (no Hydra app needed)."""

    def __init__(self, conf_dir: Path) -> None:
        self.loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(conf_dir)))
        self.cache: dict[tuple[str, ...], dict] = {}

    def compose(self, overrides: list[str]) -> DictConfig:
        key = tuple(overrides)
        if key not in self.cache:  # a sequential search plans its arms once per round
            cfg = self.loader.load_configuration("train", list(overrides), run_mode=RunMode.MULTIRUN)
            with_hydra = OmegaConf.to_container(cfg, resolve=False)
            with_hydra.pop("hydra", None)  # what the job's task function receives
            self.cache[key] = with_hydra
        return OmegaConf.create(self.cache[key])


def arm_overrides(comparison: DictConfig) -> dict[str, list[str]]:
    """`{arm: overrides}`; arm names become folder names and W&B tags, so they stay plain."""
    arms = {name: list(value) for name, value in comparison.arms.items()}
    for name in arms:
        if not ARM_NAME.match(name):
            raise ConfigError(f"comparison.arms.{name}: arm names may use letters, digits, '_', '-', '.'")
    if comparison.baseline is not None and comparison.baseline not in arms:
        raise ConfigError(f"comparison.baseline={comparison.baseline!r} is not an arm; arms: {sorted(arms)}")
    return arms


def tokens_per_example(cfg: DictConfig) -> float:
    """Mean tokens of one training example of this arm's data (every `*input_ids` field: a
    preference pair counts both answers), tokenized as the run will tokenize it."""
    from tunelab.data.base import build_data  # heavy imports only for a token budget
    from tunelab.models.load import load_tokenizer

    data = build_data(cfg.data)
    model = cfg.model
    data.attach_tokenizer(
        load_tokenizer(model.name_or_path, model.get("trust_remote_code", False), model.get("chat_template"))
    )
    counts = [sum(len(v) for k, v in e.items() if k.endswith("input_ids")) for e in data.train_examples]
    return sum(counts) / len(counts)


def budget_steps(comparison: DictConfig, cfg: DictConfig, arm: str) -> int:
    """Optimizer steps that give this arm the comparison's budget.

    `budget.steps`: the same steps for every arm; `budget.tokens`: the steps whose examples hold
    that many tokens at this arm's mean example length (the run records the tokens it took);
    `budget.examples`: the same number of training examples (batch size x gradient accumulation
    x steps), whatever the arm's batch shape.
    """
    budget = comparison.budget
    if budget.get("steps") is not None:
        return int(budget.steps)
    per_step = int(cfg.data.batch_size) * int(cfg.trainer.get("accumulate_grad_batches") or 1)
    if budget.get("tokens") is not None:
        return max(1, round(int(budget.tokens) / (per_step * tokens_per_example(cfg))))
    examples = int(budget.examples)
    if examples % per_step:
        raise ConfigError(
            f"comparison.budget.examples={examples}: arm {arm!r} takes {per_step} examples per optimizer "
            f"step (data.batch_size x trainer.accumulate_grad_batches); choose a multiple of it"
        )
    return examples // per_step


def budget_overrides(comparison: DictConfig, cfg: DictConfig, arm: str) -> list[str]:
    """The arm's train.py overrides for the budget: its steps, plus Lightning's wall-clock stop
    (`trainer.max_time`) when `budget.seconds` is set (the lr schedule still spans the steps)."""
    overrides = [f"trainer.max_steps={budget_steps(comparison, cfg, arm)}"]
    seconds = comparison.budget.get("seconds")
    if seconds is not None:  # Lightning's "DD:HH:MM:SS" (a plain string survives instantiate)
        days, rest = divmod(int(seconds), 86400)
        clock = f"{days:02d}:{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
        overrides.append(f"++trainer.max_time='{clock}'")
    return overrides


def format_value(value: Any) -> str:
    """An override value: floats in 4 significant digits, the rest as Hydra reads them."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def grid(comparison: DictConfig, arm: str) -> list[dict[str, Any]]:
    """The arm's searched points: `tune.trials` points of the grid over `tune.space` (a seeded
    sample of it when the grid is larger). `scaled` turns a point into the run's setting: `lr`
    values are multiples of the arm's own default lr when `tune.relative_lr` is true, so each
    method is searched around its usual setting."""
    tune = comparison.tune
    space = space_of(comparison, arm)
    knobs = sorted(space)
    points = [
        dict(zip(knobs, values, strict=True)) for values in itertools.product(*(space[k] for k in knobs))
    ]
    if len(points) < tune.trials:
        raise ConfigError(
            f"comparison.tune.trials={tune.trials} but arm {arm!r} has a grid of {len(points)} points "
            f"({space}); every arm gets the same number of trials"
        )
    if len(points) > tune.trials:  # the same sample for every arm of equal grid size
        points = random.Random(tune.seed).sample(points, tune.trials)
    return points


def space_of(comparison: DictConfig, arm: str) -> dict[str, list]:
    """The knobs the arm's trials search: `tune.arm_space[arm]`, else `tune.space`."""
    tune = comparison.tune
    return OmegaConf.to_container(tune.arm_space.get(arm) or tune.space, resolve=True)


def scaled(comparison: DictConfig, point: dict[str, Any], default_lr: float) -> dict[str, Any]:
    """A searched point as the run's setting: `lr` times the arm's default when `tune.relative_lr`."""
    if comparison.tune.relative_lr and "lr" in point:
        return {**point, "lr": float(point["lr"]) * default_lr}
    return dict(point)


def wandb_overrides(cfg: DictConfig, comparison: DictConfig, stage: str, arm: str) -> list[str]:
    """With a W&B logger: the comparison as group, the stage as job type, arm and stage as tags."""
    if "wandb" not in (cfg.get("logger") or {}):
        return []
    return [
        f"logger.wandb.group={comparison.name}",
        f"logger.wandb.job_type={stage}",
        f"logger.wandb.extra_tags=[{arm},{stage},{comparison.name}]",
    ]


def base_overrides(cmp_cfg: DictConfig, arm: list[str], split: str) -> list[str]:
    """Shared base, the arm, then the split overrides last so no arm can point at another split."""
    comparison = cmp_cfg.comparison
    return [
        *comparison.base,
        *arm,
        *comparison.splits.fit,
        *comparison.splits[split],
        *cmp_cfg.get("job_overrides", []),
    ]


def check_tune_splits(cfg: DictConfig, arm: str) -> None:
    """Refuse a tune job that could score test items: every eval task must declare
    `split: validation` (an lm-eval task or a custom one without a split key may read anything),
    and held-out preference pairs must not come from the test split."""
    for name, spec in (cfg.eval.get("tasks") or {}).items():
        if spec is not None and spec.get("split") != "validation":
            raise ConfigError(
                f"arm {arm!r}: eval.tasks.{name} has split={spec.get('split')!r}; the tune stage scores "
                f"validation items only: set its split, or drop it while tuning with "
                f"comparison.splits.validation: [..., '~eval.tasks.{name}']"
            )
    for part in ("train", "heldout"):
        node = (cfg.get("data") or {}).get(part)
        if isinstance(node, DictConfig) and node.get("split") == "test":
            raise ConfigError(f"arm {arm!r}: data.{part}.split=test while tuning; use fit / validation")


def plan_stage(
    cmp_cfg: DictConfig,
    configs: TrainConfigs,
    stage: str,
    best: dict[str, dict] | None = None,
    hashes: bool = True,
    points: dict[str, list[dict]] | None = None,
    first_trial: int = 0,
) -> list[Job]:
    """Every job of `stage`: tune = trials per arm on validation, confirm = seeds per arm on test.

    `hashes=False` skips composing every job for its config hash (a quick check of a preset).
    `points` ({arm: [point]}, numbered from `first_trial`) replaces the grid: a round of a
    sequential search (tunelab.results.tuning_optuna).
    """
    comparison = cmp_cfg.comparison
    split = "validation" if stage == "tune" else "test"
    jobs = []
    for arm, overrides in arm_overrides(comparison).items():
        shared = base_overrides(cmp_cfg, overrides, split)
        arm_cfg = configs.compose(shared)
        if stage == "tune":
            check_tune_splits(arm_cfg, arm)
        shared += [*budget_overrides(comparison, arm_cfg, arm), f"name={comparison.name}"]
        shared += wandb_overrides(arm_cfg, comparison, stage, arm)
        if stage == "tune":
            searched = grid(comparison, arm) if points is None else points.get(arm, [])
            settings = [scaled(comparison, p, float(arm_cfg.lr)) for p in searched]
            seeds = tune_seeds(comparison)
            runs = [
                (key, s, seed)
                for i, s in enumerate(settings)
                for key, seed in trial_keys(first_trial + i, seeds)
            ]
        else:
            if best is not None and arm not in best:
                continue  # every trial of this arm failed: nothing to confirm
            setting = (best or {}).get(arm, {})
            runs = [(f"seed{seed}", setting, int(seed)) for seed in comparison.confirm.seeds]
        for key, setting, seed in runs:
            knobs = [f"{k}={format_value(v)}" for k, v in setting.items()]
            job_overrides = [*shared, *knobs, f"seed={seed}", f"hydra.sweep.subdir={arm}/{key}"]
            jobs.append(Job(stage, arm, key, job_overrides, dict(setting), seed))
    for job in jobs if hashes else []:
        job_cfg = configs.compose(job.overrides)
        job.config_sha256 = config_sha256(job_cfg)
        job.cache_key = cache_key(job.config_sha256, named_files(job_cfg))
    return jobs


def completed_runs(out_dir: Path) -> dict[str, str]:
    """`{cache key: run dir}` of every completed run under the comparison folder."""
    found: dict[str, str] = {}
    for path in sorted(out_dir.rglob("metrics.json")):
        try:
            metrics = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue  # a run still writing, or killed mid-write: not complete
        record = metrics.get("provenance") or {}
        digest, files = record.get("config_sha256"), record.get("named_files")
        if metrics.get("status") == "completed" and digest and isinstance(files, dict):
            found.setdefault(cache_key(digest, files), str(path.parent.relative_to(out_dir)))
    return found


def move_aside(path: Path, tag: str = "old") -> Path | None:
    """Rename a run's folder to `<name>.<tag><N>` (the first free N); the new path, or None if absent.

    `old`: a failed or stale run, so its rerun starts clean; `kept`: a completed run the cache
    reuses, moved out of the folder a new job of this stage is about to write.
    """
    if not path.exists():
        return None
    n = 1
    while path.with_name(f"{path.name}.{tag}{n}").exists():
        n += 1
    return path.rename(path.with_name(f"{path.name}.{tag}{n}"))


def launch(jobs: list[Job], sweep_dir: Path, launcher: str | None, root: Path) -> int:
    """Run `jobs` as one `tunelab train -m` over the job-list sweeper; returns its exit code.
    Results land under `root` (the project root: TUNELAB_ROOT, or the current directory)."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    jobs_file = sweep_dir / "jobs.json"
    jobs_file.write_text(json.dumps([j.overrides for j in jobs], indent=1) + "\n")
    command = [  # `python -m tunelab train`: the same app as train.py, with or without a checkout
        sys.executable,
        "-m",
        "tunelab",
        "train",
        "-m",
        "hydra/sweeper=job_list",
        f"hydra.sweeper.jobs_file={jobs_file}",
        f"hydra.sweep.dir={sweep_dir}",
        *([f"hydra/launcher={launcher}"] if launcher else []),
    ]
    print(f"[compare] {sweep_dir.name}: running {len(jobs)} jobs: {' '.join(command[1:])}", flush=True)
    env = {**os.environ, "TUNELAB_ROOT": str(root)}
    return subprocess.run(command, env=env, cwd=root).returncode


def run_stage(
    jobs: list[Job], out_dir: Path, force: bool, launcher: str | None, root: Path, stage: str = ""
) -> list[Job]:
    """Reuse completed runs with the same cache key (unless `force`), run the rest, record all."""
    stage_dir = out_dir / (stage or (jobs[0].stage if jobs else "empty"))
    cache = {} if force else completed_runs(out_dir)
    for job in jobs:
        job.run_dir = cache.get(job.cache_key, "")
        job.reused = bool(job.run_dir)
    todo = [job for job in jobs if not job.reused]
    targets = {str((stage_dir / job.subdir).relative_to(out_dir)) for job in todo}
    keep_reused_runs_clear_of(jobs, targets, out_dir)
    for job in todo:
        job.run_dir = str((stage_dir / job.subdir).relative_to(out_dir))
        move_aside(out_dir / job.run_dir)
    print(f"[compare] {stage_dir.name}: {len(jobs) - len(todo)} of {len(jobs)} jobs reused from the cache")
    if todo:
        launch(todo, stage_dir, launcher, root)
    for job in jobs:
        metrics_file = out_dir / job.run_dir / "metrics.json"
        job.status = (
            json.loads(metrics_file.read_text()).get("status", "?") if metrics_file.exists() else "missing"
        )
    write_manifest(jobs, stage_dir)
    return jobs


def keep_reused_runs_clear_of(jobs: list[Job], targets: set[str], out_dir: Path) -> None:
    """Move each reused run that lies where a new job will write (a rerun whose grid shifted which
    trial holds which setting) to `<name>.kept<N>`, and point its jobs there."""
    kept: dict[str, str] = {}
    for job in jobs:
        if job.reused and job.run_dir in targets:
            if job.run_dir not in kept:
                moved = move_aside(out_dir / job.run_dir, "kept")
                kept[job.run_dir] = str(moved.relative_to(out_dir)) if moved else job.run_dir
            job.run_dir = kept[job.run_dir]


def write_manifest(jobs: list[Job], stage_dir: Path) -> None:
    stage_dir.mkdir(parents=True, exist_ok=True)
    (stage_dir / "manifest.json").write_text(json.dumps([asdict(j) for j in jobs], indent=1) + "\n")


def read_manifest(stage_dir: Path) -> list[Job]:
    path = stage_dir / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; run the {stage_dir.name} stage first")
    return [Job(**record) for record in json.loads(path.read_text())]


def job_metrics(out_dir: Path, job: Job) -> dict[str, Any]:
    path = out_dir / job.run_dir / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def best_settings(jobs: list[Job], out_dir: Path, metric: str, better: str) -> dict[str, dict]:
    """Each arm's best trial on the validation metric: the mean over the trial's seeds, counted
    only when all of them completed (ties: the earlier trial)."""
    sign = 1.0 if better == "higher" else -1.0
    best: dict[str, tuple[float, Job]] = {}
    for (arm, _trial), members in trials_of(jobs).items():
        score = trial_score(members, out_dir, metric)
        if score is None:
            continue
        if arm not in best or sign * score > sign * best[arm][0]:
            best[arm] = (score, members[0])
    return {arm: {"setting": j.setting, "score": v, "trial": j.trial} for arm, (v, j) in best.items()}


def trials_of(jobs: list[Job]) -> dict[tuple[str, str], list[Job]]:
    """Tune jobs grouped by (arm, trial), in planning order."""
    grouped: dict[tuple[str, str], list[Job]] = {}
    for job in jobs:
        grouped.setdefault((job.arm, job.trial), []).append(job)
    return grouped


def trial_score(members: list[Job], out_dir: Path, metric: str) -> float | None:
    """The mean of `metric` over a trial's runs; None if any run failed or lacks it."""
    values = [job_metrics(out_dir, j).get(metric) if j.status == "completed" else None for j in members]
    if not values or not all(isinstance(v, (int, float)) for v in values):
        return None
    return sum(float(v) for v in values) / len(values)
