"""One run: validate -> load -> adapt -> baseline eval -> fit -> eval -> save -> metrics.json."""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from tunelab.adapters.base import build_adapter, count_parameters
from tunelab.config import ConfigError
from tunelab.evaluation.preference import evaluate_preferences
from tunelab.evaluation.runner import evaluate
from tunelab.guards import TrainingGuards
from tunelab.loggers import finish_wandb
from tunelab.measure import allocated_bytes
from tunelab.module import TuneLabModule

CHECKPOINT_DIR = "checkpoints"


def output_dir(cfg: DictConfig) -> Path:
    """The run directory: Hydra's job output dir, or `cfg.output_dir` outside a Hydra app."""
    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path(cfg.output_dir)


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON to a temporary name, then rename: a crash never leaves a half-written file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def peak_memory() -> dict[str, Any]:
    """Peak accelerator memory allocated by torch, or the process's peak RSS on CPU."""
    if torch.cuda.is_available():
        return {"peak_memory_bytes": torch.cuda.max_memory_allocated(), "peak_memory_kind": "cuda"}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    return {"peak_memory_bytes": rss, "peak_memory_kind": "cpu_max_rss"}


def resume_checkpoint(cfg: DictConfig, out_dir: Path) -> str | None:
    """The checkpoint to resume from: `resume=true` means this run dir's last.ckpt."""
    if cfg.resume in (None, False):
        return None
    path = out_dir / CHECKPOINT_DIR / "last.ckpt" if cfg.resume is True else Path(cfg.resume)
    if not path.is_file():
        raise ConfigError(f"resume={cfg.resume!r}: no checkpoint at {path}")
    return str(path)


def job_overrides() -> list[str]:
    """This job's command-line overrides (for a sweep job: its own point of the sweep)."""
    if HydraConfig.initialized():
        return list(HydraConfig.get().overrides.task)
    return []


def command_line() -> str:
    """A command that reruns this one job, for tracing a table row back to its run."""
    script = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "train.py"
    return " ".join(["python", script, *job_overrides()])


def build_trainer(cfg: DictConfig, out_dir: Path, extra_callbacks: list | None = None) -> L.Trainer:
    """The Lightning Trainer from `cfg.trainer`, with this run's loggers and checkpointing."""
    loggers = [instantiate(spec, save_dir=str(out_dir)) for spec in cfg.logger.values()]
    checkpoint = ModelCheckpoint(
        dirpath=out_dir / CHECKPOINT_DIR,
        every_n_train_steps=cfg.checkpoint_every,
        save_last=True,
        save_top_k=1,
    )
    guards = TrainingGuards(**cfg.guards)
    callbacks = [checkpoint, guards, *(extra_callbacks or [])]
    return instantiate(cfg.trainer, logger=loggers, callbacks=callbacks, default_root_dir=out_dir)


def fit_and_measure(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """Everything a run does between validated config and metrics; returns the metrics."""
    L.seed_everything(cfg.seed, workers=True)
    data = instantiate(cfg.data)
    objective = instantiate(cfg.objective)
    if objective.batch_kind != data.batch_kind:
        raise ConfigError(
            f"objective needs '{objective.batch_kind}' batches but data={cfg.data._target_} gives "
            f"'{data.batch_kind}': choose a matching data config"
        )
    adapter = build_adapter(cfg.adapter)  # its config checks raise ConfigError before the model loads
    eval_tasks = {name: instantiate(spec) for name, spec in cfg.eval.tasks.items()}
    ckpt_path = resume_checkpoint(cfg, out_dir)

    loaded = instantiate(cfg.model)
    tokenizer = loaded.tokenizer
    data.attach_tokenizer(tokenizer)
    objective.attach_tokenizer(tokenizer)  # online objectives decode what they sample
    samples = out_dir / "samples.jsonl"
    metrics: dict[str, Any] = {}
    if cfg.eval.before:
        metrics |= evaluate(loaded.model, tokenizer, eval_tasks, cfg.eval.batch_size, "baseline", samples)

    model = adapter.apply(loaded.model)
    objective.prepare_model(model)  # e.g. the reward model's scalar head, trained with the adapter
    if cfg.eval.before:  # held-out preference pairs (data that has them), scored at step 0
        metrics |= evaluate_preferences(objective, model, data, "baseline")
    trainable, total = count_parameters(model)
    module = TuneLabModule(
        model,
        objective,
        optimizer=instantiate(cfg.optimizer.optimizer),
        scheduler=instantiate(cfg.optimizer.scheduler),
        param_groups=adapter.param_groups,
    )
    trainer = build_trainer(cfg, out_dir, extra_callbacks=adapter.callbacks())
    model.train()  # HF models load in eval mode and evaluation leaves them there: dropout must be live
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
    metrics |= allocated_bytes(model, trainer.optimizers)  # before eval/save can free anything

    if cfg.eval.after:
        metrics |= evaluate(model, tokenizer, eval_tasks, cfg.eval.batch_size, "eval", samples)
        metrics |= evaluate_preferences(objective, model, data, "eval", module.reference)
    artifact = adapter.save(model, out_dir)
    tokenizer.save_pretrained(artifact)
    metrics |= objective.save_artifacts(model, tokenizer, out_dir)
    tokens = int(module.train_tokens.item())
    metrics |= module.loss_summary()
    metrics |= module.metric_summary()
    metrics |= {
        "trainable_params": trainable,
        "total_params": total,
        "trainable_percent": 100.0 * trainable / total,
        "train_steps": trainer.global_step,
        "train_tokens": tokens,
        "train_tokens_per_sec": tokens / module.fit_seconds if module.fit_seconds else 0.0,
        "train_examples_truncated": data.truncated,
        "zero_token_batches": sum(
            c.zero_token_batches for c in trainer.callbacks if isinstance(c, TrainingGuards)
        ),
        "artifact": str(artifact.relative_to(out_dir)),
    }
    return metrics


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one experiment; `metrics.json` is written last, as "completed" or "failed"."""
    started = time.perf_counter()
    if torch.cuda.is_available():  # a sweep's jobs share one process: measure each on its own
        torch.cuda.reset_peak_memory_stats()
    out_dir = output_dir(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    metrics: dict[str, Any] = {
        "status": "running",
        "objective": cfg.objective.name,
        "adapter": cfg.adapter.name,
        "seed": cfg.seed,
        "name": cfg.name,
        "command": command_line(),
        "overrides": job_overrides(),
    }
    write_json_atomic(out_dir / "metrics.json", metrics)
    try:
        metrics |= fit_and_measure(cfg, out_dir)
        metrics["status"] = "completed"
    except BaseException as err:
        metrics |= {"status": "failed", "error": f"{type(err).__name__}: {err}"}
        raise
    finally:
        finish_wandb()
        metrics |= peak_memory()
        metrics["wall_seconds"] = time.perf_counter() - started
        write_json_atomic(out_dir / "metrics.json", metrics)
    print_summary(out_dir, metrics)
    return metrics


def print_summary(out_dir: Path, metrics: dict[str, Any]) -> None:
    """A short end-of-run report naming the run directory."""
    print(f"\ntunelab run {metrics['status']}: {out_dir}")
    keys = [k for k in metrics if k.startswith(("baseline/", "eval/")) and k.endswith("exact_match")]
    for key in sorted(keys):
        print(f"  {key:40s} {metrics[key]:.3f}")
    for key in ("train_loss_initial", "train_loss_final", "train_steps", "wall_seconds"):
        if key in metrics:
            print(f"  {key:40s} {metrics[key]:.4g}")
