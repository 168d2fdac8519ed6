"""`python eval.py`: evaluate without training, into an ordinary run directory.

Without `run_dir` it scores the base model (`model=...`): the no-training rows of a table, zero-
or few-shot (`eval.num_fewshot`). With `run_dir=results/...` it rebuilds a finished run's model
(its config.yaml + saved artifact, adapters included) and scores it with this command's `eval`.
Either way the scores are `eval/<task>/<metric>` in a new run directory, so tables put them next
to fine-tuned runs; the run that was evaluated is never modified.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from tunelab.adapters.base import build_adapter
from tunelab.core.config import ConfigError
from tunelab.core.io import write_json_atomic
from tunelab.core.job import command_line, job_overrides, output_dir, run_config
from tunelab.evaluation.runner import evaluate
from tunelab.scaling.measure import peak_memory

# A base-model row's label in tables: no adapter was trained.
NO_TRAINING = "train=none"


def saved_run(run_dir: Path) -> tuple[DictConfig, dict[str, Any]]:
    """A finished run's resolved config and metrics; ConfigError if it cannot be evaluated."""
    if not (run_dir / "config.yaml").is_file() or not (run_dir / "metrics.json").is_file():
        raise ConfigError(f"run_dir={run_dir}: expected a tunelab run directory (config.yaml, metrics.json)")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    if metrics.get("status") != "completed" or "artifact" not in metrics:
        raise ConfigError(f"run_dir={run_dir}: status is {metrics.get('status')!r}; only completed runs")
    if not (run_dir / metrics["artifact"]).is_dir():
        raise ConfigError(f"run_dir={run_dir}: its artifact {metrics['artifact']!r} is missing")
    return run_config(run_dir), metrics


def load_model(cfg: DictConfig) -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, run description): the saved run's trained model, or the base model."""
    if cfg.run_dir is None:
        loaded = instantiate(cfg.model)
        label = [NO_TRAINING, *own_overrides()]
        return loaded.model, loaded.tokenizer, {"adapter": "none", "objective": "none", "overrides": label}
    run_dir = Path(cfg.run_dir)
    run_cfg, run_metrics = saved_run(run_dir)
    adapter = build_adapter(run_cfg.adapter)
    loaded = instantiate(run_cfg.model)
    model = adapter.load(loaded.model, run_dir / run_metrics["artifact"])
    described = {
        "adapter": run_cfg.adapter.name,
        "objective": run_cfg.objective.name,
        "source_run": str(run_dir.resolve()),
        # The trained configuration's label, plus whatever this command changed (its eval).
        "overrides": merge_overrides(run_metrics.get("overrides", []), own_overrides()),
    }
    return model, loaded.tokenizer, described


def merge_overrides(first: list[str], then: list[str]) -> list[str]:
    """`first` with `then` applied: a key set by both keeps its value from `then`."""
    merged = {o.split("=")[0]: o for o in first}
    merged |= {o.split("=")[0]: o for o in then}
    return list(merged.values())


def own_overrides() -> list[str]:
    """This command's overrides except `run_dir` (recorded as `source_run`, not a table label)."""
    return [o for o in job_overrides() if not o.startswith("run_dir=")]


def evaluate_only(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate once, write config.yaml, metrics.json ("eval/..." scores) and samples.jsonl."""
    started = time.perf_counter()
    out_dir = output_dir(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True)
    eval_tasks = {name: instantiate(spec) for name, spec in cfg.eval.tasks.items()}  # before loading
    model, tokenizer, described = load_model(cfg)
    (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    metrics: dict[str, Any] = {
        "status": "running",
        "seed": cfg.seed,
        "name": cfg.name,
        "command": command_line(),
        "train_steps": 0,
        **described,
    }
    try:
        samples = out_dir / "samples.jsonl"
        metrics |= evaluate(model, tokenizer, eval_tasks, cfg.eval.batch_size, "eval", samples)
        metrics["status"] = "completed"
    except BaseException as err:
        metrics |= {"status": "failed", "error": f"{type(err).__name__}: {err}"}
        raise
    finally:
        metrics |= peak_memory()
        metrics["wall_seconds"] = time.perf_counter() - started
        write_json_atomic(out_dir / "metrics.json", metrics)
    print(f"\ntunelab eval {metrics['status']}: {out_dir}")
    for key in sorted(k for k, v in metrics.items() if k.startswith("eval/") and isinstance(v, float)):
        print(f"  {key:40s} {metrics[key]:.4g}")
    return metrics
