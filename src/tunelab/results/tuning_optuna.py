"""Optuna (TPE) as the tune stage's search (`comparison.tune.method: optuna`).

Every arm gets its own study with the same seeded sampler and the same `tune.trials`; the trials
run in rounds (one new trial per arm each round, launched together, so a parallel launcher runs
the arms side by side), and each round's validation scores are told to the studies before the
next round asks. A float knob is searched log-uniformly between the smallest and largest value
listed in `tune.space` (as multiples of the arm's default lr when `tune.relative_lr`); any other
knob is a choice among its listed values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from tunelab.core.config import ConfigError
from tunelab.results.comparison import (
    Job,
    TrainConfigs,
    arm_overrides,
    plan_stage,
    run_stage,
    space_of,
    trial_score,
    trials_of,
    write_manifest,
)


def suggest(trial: Any, space: dict[str, list]) -> dict[str, Any]:
    """One point of `space`: floats log-uniform over [min, max] (uniform if min <= 0), else a choice."""
    point: dict[str, Any] = {}
    for knob in sorted(space):
        values = list(space[knob])
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if numeric and any(isinstance(v, float) for v in values) and min(values) < max(values):
            low, high = float(min(values)), float(max(values))
            point[knob] = trial.suggest_float(knob, low, high, log=low > 0)
        else:
            point[knob] = trial.suggest_categorical(knob, values)
    return point


def studies_for(comparison: DictConfig, arms: list[str]) -> dict[str, Any]:
    """One study per arm, each with the same seeded TPE sampler."""
    try:
        import optuna
    except ImportError as err:
        raise ConfigError(
            "comparison.tune.method=optuna needs the optuna package: pip install optuna (or tune.method=grid)"
        ) from err
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tune = comparison.tune
    direction = "maximize" if tune.better == "higher" else "minimize"
    return {
        arm: optuna.create_study(
            direction=direction,
            sampler=optuna.samplers.TPESampler(
                seed=int(tune.seed), n_startup_trials=int(tune.startup_trials)
            ),
        )
        for arm in arms
    }


def tell(study: Any, trial: Any, runs: list[Job], out_dir: Path, metric: str) -> None:
    """The trial's validation score (the mean over its seeds) to its study; a failed run fails it."""
    from optuna.trial import TrialState

    score = trial_score(runs, out_dir, metric)
    if score is None:
        study.tell(trial, state=TrialState.FAIL)
    else:
        study.tell(trial, score)


def optuna_tune(
    cmp_cfg: DictConfig, configs: TrainConfigs, out_dir: Path, root: Path, hashes: bool = True
) -> list[Job]:
    """`tune.trials` rounds; each asks every arm's study for a point, runs those jobs, tells the
    scores. Returns every tune job (the manifest holds them all)."""
    comparison = cmp_cfg.comparison
    arms = list(arm_overrides(comparison))
    studies = studies_for(comparison, arms)
    jobs: list[Job] = []
    for round_ in range(int(comparison.tune.trials)):
        trials = {arm: studies[arm].ask() for arm in arms}
        points = {arm: [suggest(trials[arm], space_of(comparison, arm))] for arm in arms}
        planned = plan_stage(cmp_cfg, configs, "tune", hashes=hashes, points=points, first_trial=round_)
        run_stage(planned, out_dir, cmp_cfg.force, cmp_cfg.launcher, root, "tune")
        for (arm, _trial), runs in trials_of(planned).items():  # one trial per arm per round
            tell(studies[arm], trials[arm], runs, out_dir, comparison.tune.metric)
        jobs += planned
    write_manifest(jobs, out_dir / "tune")
    return jobs
