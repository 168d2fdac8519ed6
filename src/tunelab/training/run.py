"""One run: validate -> load -> adapt -> baseline eval -> fit -> eval -> save -> metrics.json."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from tunelab.adapters.base import count_parameters
from tunelab.core.config import ConfigError
from tunelab.core.io import is_disk_full, remove_partial_files, write_json_atomic
from tunelab.core.job import command_line, job_overrides, output_dir
from tunelab.core.schema import validate as validate_config
from tunelab.data.base import build_data
from tunelab.evaluation.preference import evaluate_preferences
from tunelab.evaluation.runner import deltas, evaluate
from tunelab.pruning.stage import build_pruner, run_pruning
from tunelab.scaling import compat
from tunelab.scaling.measure import allocated_bytes, peak_memory
from tunelab.scaling.model_levers import build_adapter_for, enable_gradient_checkpointing
from tunelab.scaling.speed import apply_speed, check_speed
from tunelab.scaling.strategies import gather_full_model, is_primary_process
from tunelab.training.callbacks import integrity
from tunelab.training.callbacks.faults import fault_callbacks
from tunelab.training.callbacks.guards import TrainingGuards
from tunelab.training.callbacks.lock import RunLock
from tunelab.training.callbacks.neftune import neftune_callbacks
from tunelab.training.callbacks.preemption import PreemptionCheckpoint, requeue_slurm_job
from tunelab.training.callbacks.resume import (
    AtomicCheckpointIO,
    ResumeState,
    data_fingerprint,
    previous_config_diff,
)
from tunelab.training.callbacks.signals import install_startup_handlers
from tunelab.training.callbacks.totals import RunTotals, previous_config
from tunelab.training.loggers import finish_wandb
from tunelab.training.module import TuneLabModule

CHECKPOINT_DIR = "checkpoints"


def resume_checkpoint(cfg: DictConfig, out_dir: Path) -> str | None:
    """The checkpoint to resume from: `resume=true` means this run dir's last.ckpt, `auto` the same
    when it exists (a requeued job), else a fresh start."""
    if cfg.resume in (None, False):
        return None
    last = out_dir / CHECKPOINT_DIR / "last.ckpt"
    if cfg.resume == "auto":
        return str(last) if last.is_file() else None
    path = last if cfg.resume is True else Path(cfg.resume)
    if not path.is_file():
        raise ConfigError(f"resume={cfg.resume!r}: no checkpoint at {path}")
    return str(path)


# Keys that may change between a run and its resumption: they do not change what is trained.
RESUME_MAY_CHANGE = {
    "resume", "resume_force", "preemption", "faults", "eval", "logger", "checkpoint_every", "name",
    "optimized_metric", "output_dir", "trainer.enable_progress_bar", "trainer.log_every_n_steps",
    "debug", "guards",
}  # fmt: skip


def refuse_changed_config(cfg: DictConfig, ckpt_path: Path) -> None:
    """Stop a resume whose training config differs from the one that wrote the checkpoint."""
    previous, previous_file = (None, "") if cfg.resume_force else previous_config(ckpt_path)
    if previous is None:
        return
    changed = previous_config_diff(previous, OmegaConf.to_container(cfg, resolve=True), RESUME_MAY_CHANGE)
    if changed:
        raise ConfigError(
            f"resume={cfg.resume!r}: the config changed since {ckpt_path} was written "
            f"(compared with {previous_file}): "
            + "; ".join(changed)
            + ". Resume with the same config, or pass resume_force=true"
        )


def build_trainer(cfg: DictConfig, out_dir: Path, extra_callbacks: list | None = None) -> L.Trainer:
    """The Lightning Trainer from `cfg.trainer`, with this run's loggers and checkpointing."""
    loggers = [instantiate(spec, save_dir=str(out_dir)) for spec in cfg.logger.values()]
    checkpoint = ModelCheckpoint(
        dirpath=out_dir / CHECKPOINT_DIR,
        every_n_train_steps=cfg.checkpoint_every,
        enable_version_counter=False,  # a moved run dir overwrites last.ckpt, never writes last-v1.ckpt
        save_last=True,
        save_top_k=1,
    )
    guards = TrainingGuards(**cfg.guards)
    callbacks = [checkpoint, guards, *(extra_callbacks or [])]
    if cfg.get("early_stopping"):
        callbacks.append(instantiate(cfg.early_stopping))
    checkpoint_io = AtomicCheckpointIO(cfg.faults.kill_while_saving_at_step)
    return instantiate(
        cfg.trainer, logger=loggers, callbacks=callbacks, default_root_dir=out_dir, plugins=[checkpoint_io]
    )


def reliability_callbacks(cfg: DictConfig, out_dir: Path, data_sha256: str) -> list[Callback]:
    """Exact-resume state, the preemption handler and any configured fault injection."""
    callbacks: list[Callback] = [ResumeState(data_sha256, force=cfg.resume_force)]
    callbacks.append(RunTotals(OmegaConf.to_yaml(cfg, resolve=True)))  # whole-run totals, config
    if cfg.preemption.signal:
        last = out_dir / CHECKPOINT_DIR / "last.ckpt"
        callbacks.append(PreemptionCheckpoint(cfg.preemption.signal, last))
    return callbacks + fault_callbacks(**cfg.faults)


def fit_and_measure(cfg: DictConfig, out_dir: Path, ckpt_path: str | None) -> dict[str, Any]:
    """Everything a run does between validated config and metrics; returns the metrics."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)  # stderr stays for errors
    compat.check(cfg)  # precision x quantization x adapter x optimizer x strategy x this machine
    data = build_data(cfg.data)  # bad records raise DataError here, before the model loads
    objective = instantiate(cfg.objective)
    if objective.batch_kind != data.batch_kind:
        raise ConfigError(
            f"objective needs '{objective.batch_kind}' batches but data={cfg.data._target_} gives "
            f"'{data.batch_kind}': choose a matching data config"
        )
    adapter = build_adapter_for(cfg)  # its config checks raise ConfigError before the model loads
    neftune = neftune_callbacks(cfg.get("neftune_alpha"))  # embedding noise while training only
    pruner = build_pruner(cfg.get("prune"))  # prune=none: no stage
    eval_tasks = {name: instantiate(spec) for name, spec in cfg.eval.tasks.items()}
    speed = cfg.get("speed") or {}
    check_speed(**speed)  # a missing optional package is a config error, before the model loads

    loaded = instantiate(cfg.model)
    tokenizer = loaded.tokenizer
    data.attach_tokenizer(tokenizer)
    objective.attach_tokenizer(tokenizer)  # online objectives decode what they sample
    samples = out_dir / "samples.jsonl"
    metrics: dict[str, Any] = {}
    if cfg.eval.before and is_primary_process():
        metrics |= evaluate(loaded.model, tokenizer, eval_tasks, cfg.eval.batch_size, "baseline", samples)

    if cfg.get("gradient_checkpointing"):
        enable_gradient_checkpointing(loaded.model)
    pruner.observe(loaded.model)  # recovery (prune=keep_zeros) records the base's zeros
    model = adapter.apply(loaded.model)
    objective.prepare_model(model)  # e.g. the reward model's scalar head, trained with the adapter
    apply_speed(model, **speed)  # opt-in torch.compile / Liger kernels (see docs/performance.md)
    if cfg.eval.before and is_primary_process():  # held-out preference pairs, scored at step 0
        metrics |= evaluate_preferences(objective, model, data, "baseline")
    trainable, total = count_parameters(model)
    module = TuneLabModule(
        model,
        objective,
        # plain lists, not ListConfig, in the param groups: checkpoints load with weights_only
        optimizer=instantiate(cfg.optimizer.optimizer, _convert_="all"),
        scheduler=instantiate(cfg.optimizer.scheduler),
        param_groups=adapter.param_groups,
    )
    reliability = reliability_callbacks(cfg, out_dir, data_fingerprint(data.train_examples))
    callbacks = [*adapter.callbacks(), *neftune, *reliability]
    trainer = build_trainer(cfg, out_dir, extra_callbacks=callbacks)
    model.train()  # HF models load in eval mode and evaluation leaves them there: dropout must be live
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
    gather_full_model(trainer, model)  # FSDP: whole weights again, for evaluation and saving
    if not trainer.is_global_zero:  # other ranks of a multi-process run only train
        return {}
    metrics |= allocated_bytes(model, trainer.optimizers)  # before eval/save can free anything
    metrics["resumed_from_step"] = reliability[0].resumed_from_step
    preempted = [c.preempted_at_step for c in reliability if isinstance(c, PreemptionCheckpoint)]
    if preempted and preempted[0] is not None:
        requeue = requeue_slurm_job()
        return metrics | {"status": "preempted", "preempted_at_step": preempted[0], "requeue": requeue}

    if cfg.eval.after:
        metrics |= evaluate(model, tokenizer, eval_tasks, cfg.eval.batch_size, "eval", samples)
        metrics |= evaluate_preferences(objective, model, data, "eval", module.reference)
        metrics |= deltas(metrics)  # delta/<task>/<metric>: after - before
    artifact = adapter.save(model, out_dir)
    tokenizer.save_pretrained(artifact)
    metrics |= objective.save_artifacts(model, tokenizer, out_dir)
    metrics |= run_pruning(pruner, model, adapter, tokenizer, eval_tasks, cfg.eval.batch_size, out_dir)
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
        **data.report(),  # examples, truncated examples/tokens, data/removed/<filter>, replay
        "zero_token_batches": sum(
            c.zero_token_batches for c in trainer.callbacks if isinstance(c, TrainingGuards)
        ),
        "artifact": str(artifact.relative_to(out_dir)),
    }
    return metrics | early_stopping_summary(trainer)


def early_stopping_summary(trainer: L.Trainer) -> dict[str, Any]:
    """Where early stopping stopped the run and the best monitored value, when it is on."""
    stoppers = [c for c in trainer.callbacks if isinstance(c, EarlyStopping)]
    if not stoppers:
        return {}
    stopper = stoppers[0]
    stopped = stopper.wait_count >= stopper.patience  # else the run reached max_steps
    return {
        "early_stopping/stopped_at_step": trainer.global_step if stopped else None,
        f"early_stopping/best_{stopper.monitor}": float(stopper.best_score),
    }


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one experiment; `metrics.json` is written last, as "completed" or "failed"."""
    started = time.perf_counter()
    if not is_primary_process():  # a DDP/FSDP worker rank: trains its share, writes nothing
        return fit_and_measure(cfg, output_dir(cfg), resume_checkpoint(cfg, output_dir(cfg)))
    if torch.cuda.is_available():  # a sweep's jobs share one process: measure each on its own
        torch.cuda.reset_peak_memory_stats()
    out_dir = output_dir(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = RunLock(out_dir).acquire()  # before metrics.json: a second process must not touch it
    metrics: dict[str, Any] = {
        "status": "running",
        "objective": cfg.objective.name,
        "adapter": cfg.adapter.name,
        "seed": cfg.seed,
        "name": cfg.name,
        "command": command_line(),
        "overrides": job_overrides(),
    }
    try:
        validate_config(cfg)  # types and ranges of every knob, before anything heavy runs
        install_startup_handlers(cfg.preemption.signal)  # SIGTERM and preemption from here on
        ckpt_path = integrity.verified(resume_checkpoint(cfg, out_dir))  # sha256; else the previous one
        if ckpt_path is not None:  # before config.yaml is replaced: it describes the checkpoint
            refuse_changed_config(cfg, Path(ckpt_path))
        (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        write_json_atomic(out_dir / "metrics.json", metrics)
        result = fit_and_measure(cfg, out_dir, ckpt_path)
        metrics |= result
        metrics["status"] = result.get("status", "completed")  # or "preempted": requeued to resume
    except BaseException as err:
        metrics |= {"status": "failed", "error": f"{type(err).__name__}: {err}"}
        if is_disk_full(err):  # no .tmp or 0-byte file may pass for a saved artifact
            metrics["removed_partial_files"] = remove_partial_files(out_dir)
        raise
    finally:
        finish_wandb()
        metrics |= peak_memory()
        metrics["wall_seconds"] = time.perf_counter() - started
        write_json_atomic(out_dir / "metrics.json", metrics)
        lock.release()
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
