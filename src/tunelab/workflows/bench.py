"""tunelab against TRL and a plain PyTorch loop on any HF causal LM, interleaved, with utilisation.

    OMP_NUM_THREADS=1 tunelab bench model=/path/to/hf_dir pairs=[lora,full,plain_lora] repeats=3 steps=15

Every arm is composed from tunelab's own Hydra config (`conf/train.yaml` + the overrides below)
and built through the functions a run uses: `build_data`, `instantiate(cfg.model)`,
`build_adapter_for(cfg).apply`, `instantiate(cfg.objective)`, `build_module`, `build_trainer`.
The other side of a pair gets the very same model object (adapter applied), the same tokenized
rows in the same order (the run's own sampler order) and the same optimizer settings, read from
the composed config:

- `trl`: TRL's `SFTTrainer` over those rows (`input_ids` and tunelab's completion-only `labels`).
- `plain`: a hand-written loop (forward + the objective's loss, backward, clip, step, schedule)
  over the run's own data loader: what the Lightning loop costs.
- `tunelab` variants: a lever on or off (LM head at every position, packing).

Arms run in fresh processes in the order A1 B1 C1 ... A2 B2 C2 ... (each distinct arm once per
repeat), so a drifting machine load hits every arm alike; pairs report per-repeat ratios. Each
repeat also times GEMMs at the model's shapes (`gemm` arm): the machine's limit, against which
each arm's model FLOP/s (tunelab.scaling.throughput) is a utilisation fraction.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import math
import multiprocessing
import os
import random
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tunelab.core.config import PACKAGE_CONF

SEED = 0


@dataclass
class BenchArguments:
    """`tunelab bench` arguments (key=value)."""

    model: str = "???"  # a local HF causal-LM directory
    model_config: str = "smollm2-135m"  # the conf/model entry it overrides
    pairs: list[str] = field(default_factory=lambda: ["lora", "full", "plain_lora", "head"])
    repeats: int = 3
    steps: int = 15
    batch_size: int = 4
    max_length: int = 256
    examples: int = 200  # chats written to the bench's data file
    threads: int = 1  # torch threads per arm
    gemm_rows: int = 512  # M of the timed GEMMs (tokens a step)
    gemm_seconds: float = 5.0
    profile: bool = False  # Lightning SimpleProfiler on the tunelab arms
    override: list[str] = field(default_factory=list)  # extra Hydra overrides for every tunelab arm
    json: str | None = None  # write every run's numbers (every step's loss) here
    data: str | None = None  # set by the bench: the directory of the data files it writes


@dataclass(frozen=True)
class Arm:
    """One way of running the job: a runner (key of RUNNERS), an adapter, extra config overrides."""

    runner: str
    adapter: str
    overrides: tuple[str, ...] = ()
    data: str = "chats"  # key of DATASETS: the file this arm trains on
    env: tuple[tuple[str, str], ...] = ()  # environment of the arm's (fresh) process


PACKED = ("data.packing=true",)
DPO = ("objective=dpo",)
DPO_PRE = ("objective=dpo", "objective.precompute_reference=true")
LAZY_STATE = ("optimizer.initial_state=null",)  # Adam's moments built inside the first step (torch's way)
FIXED_MMAP = (("TUNELAB_MMAP_THRESHOLD", "131072"),)  # opt-in: glibc's threshold fixed (core.allocator)
ARMS: dict[str, Arm] = {
    "tunelab_lora": Arm("tunelab", "lora"),
    "tunelab_full": Arm("tunelab", "full"),
    "tunelab_lora_allhead": Arm("tunelab", "lora", ("objective.supervised_head=false",)),
    "tunelab_lora_packed": Arm("tunelab", "lora", PACKED, data="long_tail"),
    "tunelab_lora_padded": Arm("tunelab", "lora", data="long_tail"),
    "tunelab_dpo": Arm("tunelab", "lora", DPO, data="pairs"),
    "tunelab_dpo_pre": Arm("tunelab", "lora", DPO_PRE, data="pairs"),
    "tunelab_lora_fixed_mmap": Arm("tunelab", "lora", env=FIXED_MMAP),
    "tunelab_full_fixed_mmap": Arm("tunelab", "full", env=FIXED_MMAP),
    "tunelab_full_lazy_state": Arm("tunelab", "full", LAZY_STATE),
    "trl_lora": Arm("trl", "lora"),
    "trl_full": Arm("trl", "full"),
    "trl_dpo": Arm("trl_dpo", "lora", DPO, data="pairs"),
    "trl_dpo_pre": Arm("trl_dpo", "lora", DPO_PRE, data="pairs"),
    "plain_lora": Arm("plain", "lora"),
    "plain_full": Arm("plain", "full"),
}
PAIRS: dict[str, tuple[str, str]] = {
    "lora": ("tunelab_lora", "trl_lora"),
    "full": ("tunelab_full", "trl_full"),
    "dpo": ("tunelab_dpo", "trl_dpo"),  # LoRA; the reference is the base with the adapter off
    "dpo_pre": ("tunelab_dpo_pre", "trl_dpo_pre"),  # reference log-probs computed once, up front
    "plain_lora": ("tunelab_lora", "plain_lora"),
    "plain_full": ("tunelab_full", "plain_full"),
    "head": ("tunelab_lora", "tunelab_lora_allhead"),  # the LM head at supervised positions only
    # glibc's mmap threshold fixed (opt-in) / left dynamic (default): peak RSS and its speed cost
    "mmap_lora": ("tunelab_lora_fixed_mmap", "tunelab_lora"),
    "mmap_full": ("tunelab_full_fixed_mmap", "tunelab_full"),
    # Adam's moments built before the first forward (default) / inside the first step
    "eager_state": ("tunelab_full", "tunelab_full_lazy_state"),
    # long-tailed chat lengths (`write_long_tail_chats`); different batches: speed, not losses
    "packing": ("tunelab_lora_packed", "tunelab_lora_padded"),
}
# The config group each data file is read through.
DATA_CONFIG = {"chats": "jsonl", "long_tail": "jsonl", "pairs": "preference_jsonl"}


# ---------------------------------------------------------------- data and config


TURN_TASKS = ("arithmetic", "reverse", "repeat")


def turn_pool(n: int, seed: int) -> list[list[dict]]:
    """Tiny-world chat turns ([user, assistant]) of three tasks."""
    from tunelab.world.records import chat_records

    return [r["messages"] for t in TURN_TASKS for r in chat_records(t, "train", n, seed)]


def write_chats(path: Path, n: int, seed: int) -> None:
    """`n` multi-turn chats of 1-8 tiny-world turns (arithmetic, reverse, repeat): a length spread."""
    pool = turn_pool(n, seed)
    rng = random.Random(seed)
    with path.open("w") as fh:
        for _ in range(n):
            turns = rng.sample(pool, rng.randint(1, 8))
            fh.write(json.dumps({"messages": [m for turn in turns for m in turn]}) + "\n")


def long_tail_lengths(n: int, seed: int, low: int, high: int, median: float = 80.0, sigma: float = 0.9):
    """`n` target token lengths, lognormal (median `median`, log-sd `sigma`) clipped to [low, high]:
    the long-tailed spread of real chat data (most chats short, a few long)."""
    rng = random.Random(seed)
    return [min(high, max(low, round(rng.lognormvariate(math.log(median), sigma)))) for _ in range(n)]


def write_long_tail_chats(path: Path, n: int, seed: int, tokenizer, max_length: int) -> list[int]:
    """`n` chats whose templated token lengths follow `long_tail_lengths` (20 to `max_length`):
    tiny-world turns appended until a chat reaches its drawn length (the turn that would pass
    `max_length` is left out). Returns the chats' token lengths."""
    from tunelab.data.chat import tokenize_chat

    pool = turn_pool(n, seed)
    rng = random.Random(seed + 1)
    lengths = []
    with path.open("w") as fh:
        for target in long_tail_lengths(n, seed, 20, max_length):
            messages: list[dict] = []
            length = 0
            while length < target:
                longer = messages + rng.choice(pool)
                n_tokens = len(tokenize_chat(tokenizer, longer, True)[0])
                if n_tokens > max_length and messages:
                    break
                messages, length = longer, n_tokens
            lengths.append(length)
            fh.write(json.dumps({"messages": messages}) + "\n")
    return lengths


def write_pairs(path: Path, n: int, seed: int) -> None:
    """`n` preference pairs (right vs near-miss answer, tiny world) after 0-6 earlier chat turns:
    prompts of a spread of lengths, completions of a few tokens."""
    from tunelab.world.records import preference_records

    pool = turn_pool(n, seed)
    pairs = [r for t in ("arithmetic", "reverse") for r in preference_records(t, "train", n, seed)]
    rng = random.Random(seed)
    with path.open("w") as fh:
        for pair in rng.sample(pairs, n):
            history = [m for turn in rng.sample(pool, rng.randint(0, 6)) for m in turn]
            prompt = [*history, {"role": "user", "content": pair["prompt"]}]
            fh.write(json.dumps({"prompt": prompt, "chosen": pair["chosen"], "rejected": pair["rejected"]}))
            fh.write("\n")


def write_data(args: BenchArguments, names: list[str], directory: Path) -> None:
    """The data files the chosen arms train on, into `directory` (one per DATASETS key used)."""
    used = {ARMS[name].data for name in names}
    if "chats" in used:
        write_chats(directory / "chats.jsonl", args.examples, SEED)
    if "pairs" in used:
        write_pairs(directory / "pairs.jsonl", args.examples, SEED)
    if "long_tail" in used:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.model)
        lengths = write_long_tail_chats(
            directory / "long_tail.jsonl", args.examples, SEED, tokenizer, args.max_length
        )
        q = statistics.quantiles(lengths, n=10)
        print(
            f"long-tail chats: {len(lengths)}, token length min {min(lengths)}, median "
            f"{statistics.median(lengths):.0f}, p90 {q[-1]:.0f}, max {max(lengths)}"
        )


def compose_config(args: BenchArguments, arm: Arm, out_dir: Path):
    """The run config this arm trains with: train.yaml plus the bench's overrides."""
    from hydra import compose, initialize_config_dir

    from tunelab.core.config import register_resolvers

    register_resolvers()
    overrides = [
        f"model={args.model_config}",
        f"model.name_or_path={args.model}",
        f"adapter={arm.adapter}",
        f"data={DATA_CONFIG[arm.data]}",
        f"data.train.path={Path(args.data) / arm.data}.jsonl",
        f"data.batch_size={args.batch_size}",
        f"data.max_length={args.max_length}",
        f"trainer.max_steps={args.steps}",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",  # TRL: disable_tqdm
        f"seed={SEED}",
        *arm.overrides,
        *args.override,
    ]
    if args.profile and arm.runner == "tunelab":  # per-hook totals, written to the arm's directory
        profiler = "+trainer.profiler."
        overrides += [f"{profiler}_target_=lightning.pytorch.profilers.SimpleProfiler"]
        overrides += [f"{profiler}dirpath={out_dir}", f"{profiler}filename=profile"]
    with initialize_config_dir(config_dir=str(PACKAGE_CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    cfg.logger = {"csv": cfg.logger.csv}  # a run's default logger, into this arm's directory
    return cfg


@dataclass
class Pieces:
    """What a run builds before the trainer: data, objective, adapter and the adapted model."""

    cfg: Any
    data: Any
    objective: Any
    adapter: Any
    model: Any
    tokenizer: Any


def build_pieces(cfg) -> Pieces:
    """As `tunelab.training.run.fit_and_measure` builds them (minus evaluation and pruning)."""
    import lightning as L
    from hydra.utils import instantiate

    from tunelab.data.base import build_data
    from tunelab.scaling.model_levers import build_adapter_for

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    data = build_data(cfg.data)
    objective = instantiate(cfg.objective)
    adapter = build_adapter_for(cfg)
    loaded = instantiate(cfg.model)
    data.attach_tokenizer(loaded.tokenizer)
    objective.attach_tokenizer(loaded.tokenizer)
    model = adapter.apply(loaded.model)
    model.train()
    return Pieces(cfg, data, objective, adapter, model, loaded.tokenizer)


def train_batches(data, steps: int) -> Iterator[dict]:
    """The batches a run's first `steps` steps train on: its own loader and sampler order, epoch
    after epoch (the sampler's epoch set as Lightning sets it), so `steps` may exceed an epoch."""
    loader = data.train_dataloader()
    done, epoch = 0, 0
    while done < steps:
        for sampler in (loader.sampler, getattr(loader.batch_sampler, "sampler", None)):
            if callable(getattr(sampler, "set_epoch", None)):
                sampler.set_epoch(epoch)
        before = done
        for batch in loader:
            yield batch
            done += 1
            if done == steps:
                return
        if done == before:  # an empty loader: nothing more to train on
            return
        epoch += 1


def first_batches(data, steps: int) -> list[dict]:
    """`train_batches` as a list."""
    return list(train_batches(data, steps))


def step_stats(batches: list[dict]) -> dict[str, Any]:
    from tunelab.scaling.throughput import batch_stats

    tokens = supervised = 0
    lengths: list[int] = []
    for batch in batches:
        t, s, n = batch_stats(batch)
        tokens, supervised, lengths = tokens + t, supervised + s, lengths + n
    return {"tokens": tokens, "supervised_tokens": supervised, "lengths": lengths}


def rows_in_order(data, n: int) -> list[dict]:
    """The first `n` training examples in the run's sampler order, epoch after epoch."""
    sampler = data.train_dataloader().sampler
    rows: list[dict] = []
    epoch = 0
    while len(rows) < n:
        rows += [data.train_examples[i] for i in sampler.order(epoch)]
        epoch += 1
    return rows[:n]


def row_stats(rows: list[dict]) -> dict[str, Any]:
    """Non-padding and supervised tokens and sequence lengths of unpacked rows."""
    from tunelab.scaling.throughput import count_tokens

    tokens, supervised = count_tokens(rows)
    return {"tokens": tokens, "supervised_tokens": supervised, "lengths": [len(r["input_ids"]) for r in rows]}


def optimizer_settings(cfg) -> dict[str, Any]:
    """The composed optimizer/schedule/clipping, for the arms that do not go through Lightning."""
    from omegaconf import OmegaConf

    opt = OmegaConf.to_container(cfg.optimizer.optimizer, resolve=True)
    return {
        "lr": opt["lr"],
        "betas": tuple(opt["betas"]),
        "weight_decay": opt["weight_decay"],
        "warmup": cfg.optimizer.scheduler.num_warmup_steps,
        "clip": cfg.trainer.gradient_clip_val,
    }


# ---------------------------------------------------------------- runners


def run_tunelab(args: BenchArguments, cfg, out_dir: Path) -> dict:
    """The run's module and trainer (loggers, guards, checkpointing included), timed around fit."""
    from tunelab.training.run import build_module, build_trainer

    p = build_pieces(cfg)
    stats = step_stats(first_batches(p.data, args.steps))
    module = build_module(cfg, p.model, p.objective, p.adapter)
    timer = step_loop_timer()
    trainer = build_trainer(cfg, out_dir, extra_callbacks=[*p.adapter.callbacks(), timer])
    start = time.perf_counter()
    trainer.fit(module, datamodule=p.data)
    seconds = time.perf_counter() - start
    checkpoint_seconds = trainer.strategy.checkpoint_io.seconds  # the final last.ckpt, timed apart
    check_counted(stats["tokens"], int(module.train_tokens), trainer.global_step, args.steps)
    out = {
        "seconds": seconds - checkpoint_seconds,
        "loop_seconds": timer.seconds,
        "loop_cpu_seconds": timer.cpu_seconds,
        "checkpoint_seconds": checkpoint_seconds,
        "losses": [float(x) for x in module.step_losses],
        "steps": trainer.global_step,
    }
    if args.profile:
        out["profile"] = {k: sum(v) for k, v in trainer.profiler.recorded_durations.items()}
    return out | stats | model_counts(p.model, cfg)


def step_loop_timer():
    """A Lightning callback timing the step loop: the first batch's start to the last batch's end,
    checkpoint writes inside it left out (what the plain loop's timer covers; fit's set-up and
    tear-down, e.g. the optimizer's creation and the final weight checks, are outside it)."""
    import lightning as L

    class StepLoopTimer(L.Callback):
        def __init__(self) -> None:
            self.start = self.end = self.cpu_start = self.cpu_end = 0.0
            self.checkpoint_start = self.checkpoint_end = 0.0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if not self.start:
                self.start, self.cpu_start = time.perf_counter(), time.process_time()
                self.checkpoint_start = getattr(trainer.strategy.checkpoint_io, "seconds", 0.0)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.end, self.cpu_end = time.perf_counter(), time.process_time()
            self.checkpoint_end = getattr(trainer.strategy.checkpoint_io, "seconds", 0.0)

        @property
        def seconds(self) -> float:
            return loop_seconds(self.start, self.end, self.checkpoint_end - self.checkpoint_start)

        @property
        def cpu_seconds(self) -> float:  # a checkpoint write's CPU time taken as its wall time
            return loop_seconds(self.cpu_start, self.cpu_end, self.checkpoint_end - self.checkpoint_start)

    return StepLoopTimer()


def loop_seconds(start: float, end: float, checkpoint_seconds: float) -> float:
    """Step-loop seconds between two clock readings, checkpoint writes in between left out."""
    return end - start - checkpoint_seconds


def check_counted(counted: int, trained: int, steps: int, wanted: int) -> None:
    """The bench's token count must be what the run trained on, over the steps asked for."""
    if counted != trained or steps != wanted:
        raise RuntimeError(
            f"bench: counted {counted} tokens over {wanted} steps, the run trained on {trained} in {steps}"
        )


def train_timed(trainer: Any, start: float) -> dict[str, Any]:
    """Train a TRL trainer (built after `start`, a perf_counter reading) and report as an arm does:
    whole-fit and step-loop seconds (TRL writes no checkpoint), per-step losses, steps."""
    trainer.step_losses = []
    trainer.train()
    seconds = time.perf_counter() - start
    timer = trainer.loop_timer
    return {
        "seconds": seconds,
        "loop_seconds": loop_seconds(timer.start, timer.end, 0.0),
        "loop_cpu_seconds": loop_seconds(timer.cpu_start, timer.cpu_end, 0.0),
        "checkpoint_seconds": 0.0,
        "losses": [float(x) for x in trainer.step_losses],
        "steps": trainer.state.global_step,
    }


def run_trl(args: BenchArguments, cfg, out_dir: Path) -> dict:
    """TRL's SFTTrainer on the same model object, rows, order and optimizer settings."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    p = build_pieces(cfg)
    rows = rows_in_order(p.data, args.steps * args.batch_size)
    stats = row_stats(rows)  # what TRL trains on (tunelab's batches too, when epochs hold whole batches)
    dataset = Dataset.from_list(
        [
            {"input_ids": r["input_ids"], "labels": r["labels"]}  # tunelab's completion-only labels
            for r in rows
        ]
    )
    config = SFTConfig(
        **trl_arguments(args, cfg, out_dir),
        dataset_kwargs={"skip_prepare_dataset": True},  # tunelab's tokenized rows and labels
    )

    start = time.perf_counter()
    trainer = recording(SFTTrainer)(
        model=p.model, args=config, train_dataset=dataset, processing_class=p.tokenizer
    )
    return train_timed(trainer, start) | stats | model_counts(p.model, cfg)


def recording(trainer_cls):
    """`trainer_cls` that keeps each training step's loss as a tensor (no host sync) and times its
    step loop (the first step's start to the last step's end, as `step_loop_timer`)."""
    from transformers import TrainerCallback

    class LoopTimer(TrainerCallback):
        start = end = cpu_start = cpu_end = 0.0

        def on_step_begin(self, args, state, control, **kw):
            if not self.start:
                self.start, self.cpu_start = time.perf_counter(), time.process_time()

        def on_step_end(self, args, state, control, **kw):
            self.end, self.cpu_end = time.perf_counter(), time.process_time()

    class Recording(trainer_cls):
        step_losses: list

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.loop_timer = LoopTimer()
            self.add_callback(self.loop_timer)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if model.training:
                self.step_losses.append((out[0] if return_outputs else out).detach())
            return out

    return Recording


def trl_arguments(args: BenchArguments, cfg, out_dir: Path) -> dict[str, Any]:
    """TrainingArguments matching the run's: optimizer, schedule, clipping, precision, logging."""
    opt = optimizer_settings(cfg)
    return {
        "output_dir": str(out_dir),
        "per_device_train_batch_size": args.batch_size,
        "max_steps": args.steps,
        "learning_rate": opt["lr"],
        "lr_scheduler_type": "cosine",
        "warmup_steps": opt["warmup"],
        "weight_decay": opt["weight_decay"],
        "adam_beta1": opt["betas"][0],
        "adam_beta2": opt["betas"][1],
        "adam_epsilon": 1e-8,
        "max_grad_norm": opt["clip"],
        "optim": "adamw_torch",  # tunelab's AdamW is unfused on CPU
        "bf16": False,  # TRL's default is bf16 autocast; tunelab's precision=fp32 runs float32
        "gradient_checkpointing": False,  # TRL 1.x turns it on by default; tunelab's default is off
        "max_length": args.max_length,
        "logging_steps": cfg.trainer.log_every_n_steps,
        "save_strategy": "no",  # tunelab's final checkpoint is timed apart, so none here
        "report_to": "none",
        "disable_tqdm": True,
        "use_cpu": True,
        "seed": SEED,
        "dataloader_num_workers": 0,
        "train_sampling_strategy": "sequential",  # the rows are already in the run's order
    }


def pair_stats(pairs: list[dict]) -> dict[str, Any]:
    """Tokens of preference pairs as rows: prompt + chosen and prompt + rejected (the prompt's
    first token never a target, every completion token supervised)."""
    rows = [p["prompt"] + p[side] for p in pairs for side in ("chosen", "rejected")]
    supervised = sum(len(p["chosen"]) + len(p["rejected"]) for p in pairs)
    return {"tokens": sum(map(len, rows)), "supervised_tokens": supervised, "lengths": list(map(len, rows))}


def run_trl_dpo(args: BenchArguments, cfg, out_dir: Path) -> dict:
    """TRL's DPOTrainer on the same LoRA model object (reference: the adapter disabled), pairs,
    order, beta and optimizer settings; reference log-probs precomputed when the arm's are."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    p = build_pieces(cfg)
    # Every training pair, in the run's order: TRL precomputes reference log-probs over all of them,
    # as the tunelab arm does; max_steps stops both after the same rows.
    steps_rows = args.steps * args.batch_size
    every = rows_in_order(p.data, max(steps_rows, len(p.data.train_examples)))
    pairs = every[:steps_rows]
    names = {"prompt": "prompt_ids", "chosen": "chosen_ids", "rejected": "rejected_ids"}
    dataset = Dataset.from_list([{names[k]: r[k] for k in names} for r in every])

    class PreTokenized(recording(DPOTrainer)):
        def _prepare_dataset(self, dataset, *a, **kw):  # TRL 1.x tokenizes text; these are token ids
            return dataset

    config = DPOConfig(
        **trl_arguments(args, cfg, out_dir),
        beta=cfg.objective.beta,
        precompute_ref_log_probs=bool(cfg.objective.precompute_reference),
    )
    start = time.perf_counter()
    trainer = PreTokenized(
        model=p.model, ref_model=None, args=config, train_dataset=dataset, processing_class=p.tokenizer
    )
    return train_timed(trainer, start) | pair_stats(pairs) | model_counts(p.model, cfg)


def run_plain(args: BenchArguments, cfg, out_dir: Path) -> dict:
    """The same steps as a hand-written loop over the run's own loader: forward + loss, backward,
    clip, step, schedule; no Lightning, no logging, no guards."""
    import torch
    from hydra.utils import instantiate

    p = build_pieces(cfg)
    batches = first_batches(p.data, args.steps)
    stats = step_stats(batches)
    groups = p.adapter.param_groups(p.model) if p.adapter.param_groups else None
    params = [q for q in p.model.parameters() if q.requires_grad]
    optimizer = instantiate(cfg.optimizer.optimizer, _convert_="all")(groups or [{"params": params}])
    scheduler = instantiate(cfg.optimizer.scheduler)(optimizer, num_training_steps=args.steps)
    clip = cfg.trainer.gradient_clip_val
    losses = []
    start = time.perf_counter()
    first = cpu_first = 0.0
    for batch in train_batches(p.data, args.steps):
        if not first:  # the step loop starts with the first batch in hand
            first, cpu_first = time.perf_counter(), time.process_time()
        loss = p.objective(p.model, batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach())
    end, cpu_end = time.perf_counter(), time.process_time()
    seconds = end - start
    return (
        {
            "seconds": seconds,
            "loop_seconds": end - first,
            "loop_cpu_seconds": cpu_end - cpu_first,
            "checkpoint_seconds": 0.0,
            "losses": [float(x) for x in losses],
            "steps": len(losses),
        }
        | stats
        | model_counts(p.model, cfg)
    )


def model_counts(model, cfg) -> dict[str, Any]:
    """Model FLOP inputs: matmul weights, attention size, trainable weights, full or not."""
    from dataclasses import asdict

    from tunelab.adapters.base import count_parameters
    from tunelab.scaling.throughput import model_shape

    trainable, total = count_parameters(model)
    return {
        "shape": asdict(model_shape(model)),
        "trainable_params": trainable,
        "total_params": total,
        "full": cfg.adapter.name == "full",
    }


def run_gemm(args: BenchArguments, cfg, out_dir: Path) -> dict:
    """Sustained float32 matmul FLOP/s at the model's shapes (M = tokens of a mean step)."""
    import torch
    from transformers import AutoConfig

    from tunelab.scaling.throughput import gemm_flops

    c = AutoConfig.from_pretrained(args.model)
    d, f, v = c.hidden_size, c.intermediate_size, c.vocab_size
    head_dim = getattr(c, "head_dim", None) or d // c.num_attention_heads
    a, kv = c.num_attention_heads * head_dim, c.num_key_value_heads * head_dim
    m = args.gemm_rows
    shapes = [(m, d, a), (m, d, kv), (m, d, kv), (m, a, d), (m, d, f), (m, d, f), (m, f, d), (m // 4, d, v)]
    mats = [(torch.randn(i, k), torch.randn(k, j)) for i, k, j in shapes]
    for x, w in mats:  # warm-up
        x @ w
    flops, seconds = 0, 0.0
    while seconds < args.gemm_seconds:
        for (x, w), shape in zip(mats, shapes, strict=True):
            start = time.perf_counter()
            x @ w
            seconds += time.perf_counter() - start
            flops += gemm_flops(*shape)
    return {"seconds": seconds, "flops": flops, "flops_per_sec": flops / seconds, "shapes": shapes}


RUNNERS: dict[str, Callable[..., dict]] = {
    "tunelab": run_tunelab,
    "trl": run_trl,
    "trl_dpo": run_trl_dpo,
    "plain": run_plain,
}


# ---------------------------------------------------------------- driver


def run_arm(name: str, args: BenchArguments) -> dict:
    """One arm in this (fresh) process, in a directory removed afterwards (a full-SFT arm's
    checkpoint is the model's size again)."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as out_dir:
        return measure_arm(name, args, Path(out_dir))


def measure_arm(name: str, args: BenchArguments, out_dir: Path) -> dict:
    """One arm's run; adds peak RSS, tokens/s and model FLOP/s."""
    import torch

    from tunelab.scaling.throughput import ModelShape, training_flops

    torch.set_num_threads(args.threads)
    if name == "gemm":
        return run_gemm(args, None, out_dir)
    arm = ARMS[name]
    os.environ.update(dict(arm.env))  # this process is the arm's own (`in_fresh_process`)
    out = RUNNERS[arm.runner](args, compose_config(args, arm, out_dir), out_dir)
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["tokens_per_sec"] = out["tokens"] / out["seconds"]
    out["loop_tokens_per_sec"] = out["tokens"] / out["loop_seconds"]
    # per CPU-second of the arm's one thread: far less sensitive than wall time to a shared machine
    out["cpu_tokens_per_sec"] = out["tokens"] / out["loop_cpu_seconds"]
    out["ms_per_step"] = 1000 * out["seconds"] / max(out["steps"], 1)
    adapter_weights = 0 if out["full"] else out["trainable_params"]
    flops = training_flops(
        ModelShape(**out["shape"]),
        out["tokens"],
        out["supervised_tokens"],
        out.pop("lengths"),
        full=out["full"],
        adapter_weights=adapter_weights,
    )
    out["model_flops_per_sec"] = flops / out["seconds"]
    return out


def in_fresh_process(name: str, args: BenchArguments) -> dict:
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(run_arm, name, args).result()


def arms_of(pairs: list[str]) -> list[str]:
    """Distinct arms of the pairs, in first-use order."""
    return list(dict.fromkeys(a for p in pairs for a in PAIRS[p]))


def report(runs: dict[str, list[dict]], pairs: list[str], gemm: list[dict]) -> None:
    from tunelab.scaling.throughput import paired_ratios

    peak = statistics.median(g["flops_per_sec"] for g in gemm)
    per_repeat = ", ".join(f"{g['flops_per_sec'] / 1e9:.1f}" for g in gemm)
    print(f"\nGEMM at the model's shapes (float32), GFLOP/s per repeat: {per_repeat}")
    print(
        "\n| arm | tok/s (median) | step-loop tok/s | ms/step | ckpt s | peak RSS MiB"
        " | model GFLOP/s | of GEMM |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, rs in runs.items():
        gf = statistics.median(r["model_flops_per_sec"] for r in rs)
        print(
            f"| {name} | {statistics.median(r['tokens_per_sec'] for r in rs):.0f}"
            f" | {statistics.median(r['loop_tokens_per_sec'] for r in rs):.0f}"
            f" | {statistics.median(r['ms_per_step'] for r in rs):.0f}"
            f" | {statistics.median(r['checkpoint_seconds'] for r in rs):.2f}"
            f" | {statistics.median(r['peak_rss_mib'] for r in rs):.0f}"
            f" | {gf / 1e9:.1f} | {gf / peak:.1%} |"
        )
    print(
        "\n| pair | A | B | A/B tok/s per repeat | median | A/B step-loop tok/s per repeat | median"
        " | A/B step-loop tok per CPU-s per repeat | median"
        " | A/B peak RSS | loss step 1 A / B | max loss gap |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for pair in pairs:
        a, b = PAIRS[pair]
        tps = paired_ratios([r["tokens_per_sec"] for r in runs[a]], [r["tokens_per_sec"] for r in runs[b]])
        loop = paired_ratios(
            [r["loop_tokens_per_sec"] for r in runs[a]], [r["loop_tokens_per_sec"] for r in runs[b]]
        )
        cpu = paired_ratios(
            [r["cpu_tokens_per_sec"] for r in runs[a]], [r["cpu_tokens_per_sec"] for r in runs[b]]
        )
        rss = paired_ratios([r["peak_rss_mib"] for r in runs[a]], [r["peak_rss_mib"] for r in runs[b]])
        la, lb = runs[a][0]["losses"], runs[b][0]["losses"]
        gap = max((abs(x - y) for x, y in zip(la, lb, strict=False)), default=float("nan"))
        print(
            f"| {pair} | {a} | {b} | {', '.join(f'{r:.2f}' for r in tps.ratios)} | **{tps.median:.2f}**"
            f" | {', '.join(f'{r:.2f}' for r in loop.ratios)} | **{loop.median:.2f}**"
            f" | {', '.join(f'{r:.2f}' for r in cpu.ratios)} | **{cpu.median:.2f}**"
            f" | {rss.median:.2f} | {la[0]:.6f} / {lb[0]:.6f} | {gap:.2e} |"
        )
    if "profile" in runs.get("tunelab_lora", [{}])[0]:
        print_profile(runs["tunelab_lora"][0]["profile"])


def print_profile(durations: dict[str, float]) -> None:
    """Lightning SimpleProfiler totals of one tunelab LoRA run, grouped into step phases."""
    from tunelab.scaling.throughput import profile_breakdown

    print("\nprofile of tunelab_lora, first repeat (seconds over the run, Lightning SimpleProfiler):")
    for phase, seconds in profile_breakdown(durations).items():
        print(f"  {seconds:9.3f}  {phase}")


def main(args: BenchArguments) -> int:
    """Run every arm of the chosen pairs, interleaved over repeats, and print the tables."""
    pairs = list(args.pairs)
    unknown = [p for p in pairs if p not in PAIRS]
    if unknown:
        from tunelab.core.config import ConfigError

        raise ConfigError(f"tunelab bench: pairs has unknown {unknown}; known: {sorted(PAIRS)}")
    names = arms_of(pairs)
    data = Path(tempfile.mkdtemp(prefix="bench-data-"))
    write_data(args, names, data)
    args.data = str(data)
    import torch
    import transformers

    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, threads per arm {args.threads}"
    )
    print(f"args: {asdict(args)}")
    runs: dict[str, list[dict]] = {n: [] for n in names}
    gemm: list[dict] = []
    for repeat in range(args.repeats):  # A B C ... per repeat: a drifting load hits every arm alike
        gemm.append(in_fresh_process("gemm", args))
        for name in names:
            runs[name].append(in_fresh_process(name, args))
            r = runs[name][-1]
            print(f"repeat {repeat} {name}: {r['tokens_per_sec']:.0f} tok/s, {r['ms_per_step']:.0f} ms/step")
        if args.json:  # raw numbers, rewritten after each repeat
            record = {"args": asdict(args), "runs": runs, "gemm": gemm}
            Path(args.json).write_text(json.dumps(record, indent=1))
    report(runs, pairs, gemm)
    return 0
