"""compare.py's body: the tune, confirm and report stages over one comparison folder."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from tunelab.core.config import PACKAGE_CONF, ConfigError
from tunelab.results.comparison import (
    TrainConfigs,
    best_settings,
    plan_stage,
    read_manifest,
    run_stage,
)


def tune_stage(cfg: DictConfig, configs: TrainConfigs, out_dir: Path, root: Path) -> list:
    """Every arm's trials on the validation split; writes tune/best.json."""
    comparison = cfg.comparison
    if comparison.tune.method == "optuna":
        from tunelab.results.tuning_optuna import optuna_tune  # optuna only when asked for

        jobs = optuna_tune(cfg, configs, out_dir, root)
    elif comparison.tune.method == "grid":
        jobs = run_stage(plan_stage(cfg, configs, "tune"), out_dir, cfg.force, cfg.launcher, root, "tune")
    else:
        raise ConfigError(f"comparison.tune.method={comparison.tune.method!r}: expected grid or optuna")
    best = best_settings(jobs, out_dir, comparison.tune.metric, comparison.tune.better)
    (out_dir / "tune" / "best.json").write_text(json.dumps(best, indent=1, sort_keys=True) + "\n")
    for arm, record in best.items():
        score = f"{comparison.tune.metric}={record['score']:.4g}"
        print(f"[compare] tune: {arm}: best {record['setting']} ({score})")
    return jobs


def confirm_stage(cfg: DictConfig, configs: TrainConfigs, out_dir: Path, root: Path) -> list:
    """Each arm at its best setting over `confirm.seeds`, scored on the test split."""
    best_file = out_dir / "tune" / "best.json"
    if not best_file.is_file():
        raise FileNotFoundError(f"{best_file}: missing; run the tune stage first (stages=[tune,confirm])")
    best = {arm: record["setting"] for arm, record in json.loads(best_file.read_text()).items()}
    return run_stage(
        plan_stage(cfg, configs, "confirm", best), out_dir, cfg.force, cfg.launcher, root, "confirm"
    )


def run_comparison(cfg: DictConfig, root: Path) -> int:
    """Run the configured stages; 1 when any job of this invocation did not complete."""
    out_dir = Path(cfg.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "comparison.yaml").write_text(OmegaConf.to_yaml(cfg.comparison, resolve=True))
    configs = TrainConfigs(PACKAGE_CONF)
    jobs = []
    if "tune" in cfg.stages:
        jobs += tune_stage(cfg, configs, out_dir, root)
    if "confirm" in cfg.stages:
        jobs += confirm_stage(cfg, configs, out_dir, root)
    if "report" in cfg.stages:
        from tunelab.results.comparison_report import write_report  # matplotlib only when reporting

        write_report(
            cfg.comparison, out_dir, read_manifest(out_dir / "tune"), read_manifest(out_dir / "confirm")
        )
        print(f"[compare] report: {out_dir / 'report'}")
    failed = [f"{j.stage}/{j.arm}/{j.key} ({j.status})" for j in jobs if j.status != "completed"]
    reused = sum(j.reused for j in jobs)
    ran = len(jobs) - reused - len(failed)
    print(f"[compare] {len(jobs)} jobs: {reused} reused, {ran} run, {len(failed)} failed")
    if failed:
        print("[compare] not completed: " + ", ".join(failed))
    return 1 if failed else 0
