"""One run, as named stages (each a function below, called in this order by `run_stages`):

1. `prepare`  — seed, compatibility check, data, objective, adapter, eval tasks, pruner: every
                config and data error is raised here, before the model loads;
2. `load`     — the base model and tokenizer, attached to the data and the objective;
3. `baseline` — the eval tasks on the untouched base (`baseline/...`);
4. `adapt`    — gradient checkpointing, the adapter, the objective's own head, speed levers, and
                the held-out preference pairs at step 0;
5. `fit`      — the Lightning module, callbacks and trainer; `trainer.fit`;
6. `evaluate` — the eval tasks after training (`eval/...`) and their deltas;
7. `save`     — the trained artifact, the objective's artifacts, the pruning stage;
8. `report`   — every part's own `report()` (module, data, callbacks) merged into metrics.json.

`train` wraps the stages: it writes config.yaml and metrics.json ("running", then "completed",
"failed" or "preempted") and prints the summary. run.py never reads a part's internals: a part that
contributes to metrics.json says so through `report()`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from omegaconf import DictConfig, OmegaConf
from torch import nn

from tunelab.adapters.base import Adapter, count_parameters
from tunelab.core.allocator import release_large_frees
from tunelab.core.config import ConfigError, instantiate_clearly
from tunelab.core.io import is_disk_full, remove_partial_files, write_json_atomic
from tunelab.core.job import command_line, job_overrides, output_dir
from tunelab.core.provenance import run_provenance
from tunelab.core.schema import validate as validate_config
from tunelab.data.base import build_data
from tunelab.evaluation.preference import evaluate_preferences
from tunelab.evaluation.runner import build_eval_tasks, deltas, evaluate
from tunelab.objectives.base import Objective
from tunelab.pruning.base import Pruner
from tunelab.pruning.stage import build_pruner, run_pruning
from tunelab.scaling import compat
from tunelab.scaling.measure import allocated_bytes, memory_baseline, peak_memory
from tunelab.scaling.memory import estimate_beside_peak
from tunelab.scaling.model_levers import build_adapter_for, enable_gradient_checkpointing
from tunelab.scaling.speed import apply_speed, check_speed
from tunelab.scaling.strategies import gather_full_model, is_primary_process
from tunelab.training.callbacks import integrity
from tunelab.training.callbacks.faults import fault_callbacks
from tunelab.training.callbacks.guards import TrainingGuards
from tunelab.training.callbacks.lock import RunLock
from tunelab.training.callbacks.neftune import neftune_callbacks
from tunelab.training.callbacks.preemption import PreemptionCheckpoint, requeue_plan
from tunelab.training.callbacks.progress import StepProgressBar
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
from tunelab.training.report import merged_reports

CHECKPOINT_DIR = "checkpoints"


@dataclass
class RunParts:
    """What `prepare` builds from the config, before any model weight is read."""

    data: Any  # a TokenizedDataModule (or a subclass for preference / prompt / class data)
    objective: Objective
    adapter: Adapter
    pruner: Pruner
    eval_tasks: dict[str, Any]
    speed: dict[str, Any]
    neftune: list[Callback]


@dataclass
class RunState:
    """What the stages after `prepare` hand each other."""

    parts: RunParts
    out_dir: Path
    samples: Path
    tokenizer: Any = None
    model: nn.Module | None = None
    module: TuneLabModule | None = None
    trainer: L.Trainer | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


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


def build_module(cfg: DictConfig, model: nn.Module, objective: Objective, adapter: Adapter) -> TuneLabModule:
    """The Lightning module: the model, its objective, and the optimizer config's optimizer,
    schedule and initial state over the adapter's parameter groups."""
    return TuneLabModule(
        model,
        objective,
        # plain lists, not ListConfig, in the param groups: checkpoints load with weights_only
        optimizer=instantiate(cfg.optimizer.optimizer, _convert_="all"),
        scheduler=instantiate(cfg.optimizer.scheduler),
        param_groups=adapter.param_groups,
        initial_state=instantiate(cfg.optimizer.get("initial_state")),
    )


def build_trainer(cfg: DictConfig, out_dir: Path, extra_callbacks: list | None = None) -> L.Trainer:
    """The Lightning Trainer from `cfg.trainer`, with this run's loggers and checkpointing."""
    release_large_frees()  # opt-in (TUNELAB_MMAP_THRESHOLD): lower peak RSS for speed (core.allocator)
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
    if cfg.trainer.get("enable_progress_bar", True):
        callbacks.append(StepProgressBar())
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


def prepare(cfg: DictConfig) -> RunParts:
    """Stage 1: build everything the config names; config and data errors stop the run here."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)  # stderr stays for errors
    compat.check(cfg)  # precision x quantization x adapter x optimizer x strategy x this machine
    data = build_data(cfg.data)  # bad records raise DataError here, before the model loads
    objective = instantiate(cfg.objective)
    if objective.batch_kind != data.batch_kind:
        raise ConfigError(
            f"objective needs '{objective.batch_kind}' batches but data={cfg.data._target_} gives "
            f"'{data.batch_kind}': choose a matching data config"
        )
    speed = dict(cfg.get("speed") or {})
    check_speed(**speed)  # a missing optional package is a config error, before the model loads
    return RunParts(
        data=data,
        objective=objective,
        adapter=build_adapter_for(cfg),  # its config checks raise ConfigError here
        pruner=build_pruner(cfg.get("prune")),  # prune=none: no stage
        eval_tasks=build_eval_tasks(cfg.eval.tasks),  # bad held-out records stop the run here
        speed=speed,
        neftune=neftune_callbacks(cfg.get("neftune_alpha")),  # embedding noise while training only
    )


def load(cfg: DictConfig, state: RunState) -> None:
    """Stage 2: the base model and tokenizer; data and objective get the tokenizer."""
    loaded = instantiate_clearly(cfg.model)  # e.g. a missing optional extra: its ConfigError line
    state.model, state.tokenizer = loaded.model, loaded.tokenizer
    state.parts.data.attach_tokenizer(state.tokenizer)
    state.parts.objective.attach_tokenizer(state.tokenizer)  # online objectives decode what they sample


def score_tasks(cfg: DictConfig, state: RunState, prefix: str) -> dict[str, Any]:
    """The eval tasks on the model as it is now, as `<prefix>/<task>/<metric>`."""
    tasks = state.parts.eval_tasks
    return evaluate(state.model, state.tokenizer, tasks, cfg.eval.batch_size, prefix, state.samples)


def baseline(cfg: DictConfig, state: RunState) -> None:
    """Stage 3: the eval tasks on the untouched base, as `baseline/<task>/<metric>`."""
    if cfg.eval.before and is_primary_process():
        state.metrics |= evaluate(
            state.model,
            state.tokenizer,
            state.parts.eval_tasks,
            cfg.eval.batch_size,
            "baseline",
            state.samples,
        )


def adapt(cfg: DictConfig, state: RunState) -> None:
    """Stage 4: make the base trainable as the adapter says, plus the objective's own head."""
    parts = state.parts
    if cfg.get("gradient_checkpointing"):
        enable_gradient_checkpointing(state.model)
    parts.pruner.observe(state.model)  # recovery (prune=keep_zeros) records the base's zeros
    state.model = parts.adapter.apply(state.model)
    parts.objective.prepare_model(state.model)  # e.g. the reward model's scalar head
    apply_speed(state.model, **parts.speed)  # opt-in torch.compile / Liger kernels
    if cfg.eval.before and is_primary_process():  # held-out preference pairs, scored at step 0
        state.metrics |= evaluate_preferences(parts.objective, state.model, parts.data, "baseline")


def fit(cfg: DictConfig, state: RunState, ckpt_path: str | None) -> None:
    """Stage 5: the Lightning module and trainer, then `trainer.fit` (resuming from `ckpt_path`)."""
    parts = state.parts
    state.module = build_module(cfg, state.model, parts.objective, parts.adapter)
    state.metrics["data_sha256"] = data_fingerprint(parts.data.train_examples)  # provenance
    reliability = reliability_callbacks(cfg, state.out_dir, state.metrics["data_sha256"])
    callbacks = [*parts.adapter.callbacks(), *parts.neftune, *reliability]
    state.trainer = build_trainer(cfg, state.out_dir, extra_callbacks=callbacks)
    state.model.train()  # HF models load in eval mode and evaluation leaves them there
    state.trainer.fit(state.module, datamodule=parts.data, ckpt_path=ckpt_path, weights_only=True)
    gather_full_model(state.trainer, state.model)  # FSDP: whole weights again, for evaluation and saving
    # Measured before evaluation or saving can free anything.
    state.metrics |= allocated_bytes(state.model, state.trainer.optimizers)


def evaluate_trained(cfg: DictConfig, state: RunState) -> None:
    """Stage 6: the eval tasks after training (`eval/...`), preference pairs, and deltas."""
    if not cfg.eval.after:
        return
    parts = state.parts
    state.metrics |= evaluate(
        state.model, state.tokenizer, parts.eval_tasks, cfg.eval.batch_size, "eval", state.samples
    )
    state.metrics |= evaluate_preferences(
        parts.objective, state.model, parts.data, "eval", state.module.reference
    )
    state.metrics |= deltas(state.metrics)  # delta/<task>/<metric>: after - before


def save(cfg: DictConfig, state: RunState) -> None:
    """Stage 7: the trained artifact (adapter or model) with its tokenizer, then pruning."""
    parts, out_dir = state.parts, state.out_dir
    artifact = parts.adapter.save(state.model, out_dir)
    state.tokenizer.save_pretrained(artifact)
    state.metrics["artifact"] = str(artifact.relative_to(out_dir))
    state.metrics |= parts.objective.save_artifacts(state.model, state.tokenizer, out_dir)
    state.metrics |= run_pruning(
        parts.pruner,
        state.model,
        parts.adapter,
        state.tokenizer,
        parts.eval_tasks,
        cfg.eval.batch_size,
        out_dir,
    )


def report(state: RunState) -> dict[str, Any]:
    """Stage 8: the run's sizes plus every part's own `report()`, merged."""
    trainable, total = count_parameters(state.model)
    sizes = {
        "trainable_params": trainable,
        "total_params": total,
        "trainable_percent": 100.0 * trainable / total,
        "train_steps": state.trainer.global_step,
    }
    parts = [state.module, state.parts.data, *state.trainer.callbacks]
    return state.metrics | sizes | merged_reports(parts)


def preempted(metrics: dict[str, Any]) -> dict[str, Any] | None:
    """The run's record when the preemption handler stopped it, with how it will be requeued
    (training.sweep.run_job requeues it once metrics.json is written)."""
    if metrics.get("preempted_at_step") is None:
        return None
    return metrics | {"status": "preempted", "requeue": requeue_plan()}


def run_stages(cfg: DictConfig, out_dir: Path, ckpt_path: str | None) -> dict[str, Any]:
    """The stages in order; returns the metrics ({} on the non-primary ranks of a multi-process run)."""
    state = RunState(parts=prepare(cfg), out_dir=out_dir, samples=out_dir / "samples.jsonl")
    load(cfg, state)
    baseline(cfg, state)
    adapt(cfg, state)
    fit(cfg, state, ckpt_path)
    if not state.trainer.is_global_zero:  # other ranks of a multi-process run only train
        return {}
    stopped = preempted(merged_reports(state.trainer.callbacks))
    if stopped is not None:
        return state.metrics | stopped
    evaluate_trained(cfg, state)
    save(cfg, state)
    return report(state)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one experiment; `metrics.json` is written last, as "completed" or "failed"."""
    started, baseline = time.perf_counter(), memory_baseline()
    if not is_primary_process():  # a DDP/FSDP worker rank: trains its share, writes nothing
        return run_stages(cfg, output_dir(cfg), resume_checkpoint(cfg, output_dir(cfg)))
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
        **run_provenance(cfg),  # git commit/dirty, package versions, hardware, config hash
    }
    try:
        validate_config(cfg)  # types and ranges of every knob, before anything heavy runs
        install_startup_handlers(cfg.preemption.signal)  # SIGTERM and preemption from here on
        ckpt_path = integrity.verified(resume_checkpoint(cfg, out_dir))  # sha256; else the previous one
        if ckpt_path is not None:  # before config.yaml is replaced: it describes the checkpoint
            refuse_changed_config(cfg, Path(ckpt_path))
        (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        write_json_atomic(out_dir / "metrics.json", metrics)
        print(run_header(cfg, out_dir, ckpt_path), flush=True)
        result = run_stages(cfg, out_dir, ckpt_path)
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
        metrics |= estimate_beside_peak(cfg, baseline, metrics["peak_memory_bytes"])
        metrics["wall_seconds"] = time.perf_counter() - started
        write_json_atomic(out_dir / "metrics.json", metrics)
        lock.release()
    print_summary(out_dir, metrics)
    return metrics


def run_header(cfg: DictConfig, out_dir: Path, ckpt_path: str | None) -> str:
    """One line saying what is being run and where it lands."""
    data = str(cfg.data.get("_target_", "?")).rsplit(".", 1)[-1]
    start = f", resuming {ckpt_path}" if ckpt_path else ""
    return (
        f"tunelab: adapter={cfg.adapter.name} objective={cfg.objective.name} data={data} "
        f"model={cfg.model.get('name_or_path', '?')} max_steps={cfg.trainer.max_steps} "
        f"seed={cfg.seed}{start} -> {out_dir}"
    )


def print_summary(out_dir: Path, metrics: dict[str, Any]) -> None:
    """A short end-of-run report naming the run directory."""
    print(f"\ntunelab run {metrics['status']}: {out_dir}")
    scores = ("exact_match", "/accuracy")  # the toy tasks' and your data's (eval=heldout) generation scores
    keys = [k for k in metrics if k.startswith(("baseline/", "eval/")) and k.endswith(scores)]
    for key in sorted(keys):
        print(f"  {key:40s} {metrics[key]:.3f}")
    for key in ("train_loss_initial", "train_loss_final", "train_steps", "wall_seconds"):
        if key in metrics:
            print(f"  {key:40s} {metrics[key]:.4g}")
