"""Multi-device strategies: the FSDP factory the strategy configs name, and what a run does
differently when it is one of several processes (only rank 0 evaluates and writes files).
"""

from __future__ import annotations

import os

import lightning as L
from lightning.pytorch.strategies import FSDPStrategy, ModelParallelStrategy
from torch import nn
from torch.distributed.fsdp import FullyShardedDataParallel
from transformers.modeling_layers import GradientCheckpointingLayer

from tunelab.scaling.parallel import gather_fully_sharded, gather_tensor_parallel


def fsdp(
    sharding_strategy: str = "FULL_SHARD",
    activation_checkpointing: bool = False,
    cpu_offload: bool = False,
    **kwargs,
) -> FSDPStrategy:
    """Lightning's FSDPStrategy wrapping each transformer block as one FSDP unit.

    Blocks are found by type, not by name: every HF decoder layer (Llama, Qwen, Mistral, GPT-2 ...)
    subclasses transformers' GradientCheckpointingLayer. `use_orig_params` lets frozen and
    trainable weights share a block (LoRA) and keeps parameter names for checkpoints.
    """
    blocks = {GradientCheckpointingLayer}
    return FSDPStrategy(
        sharding_strategy=sharding_strategy,
        auto_wrap_policy=blocks,
        activation_checkpointing_policy=blocks if activation_checkpointing else None,
        cpu_offload=cpu_offload,
        use_orig_params=True,
        **kwargs,
    )


def global_rank_from_env() -> int:
    """This process's global rank before the Trainer exists (0 for a plain one-process run).

    Lightning's launcher starts ranks > 0 with LOCAL_RANK/NODE_RANK set; torchrun sets RANK and
    SLURM's srun SLURM_PROCID.
    """
    for key in ("RANK", "SLURM_PROCID"):
        if key in os.environ:
            return int(os.environ[key])
    local = int(os.environ.get("LOCAL_RANK", 0))
    node = int(os.environ.get("NODE_RANK", 0))
    # With the subprocess launcher every node's processes are LOCAL_RANK 0..n-1: node > 0 is never rank 0.
    return local + node * 1_000_000


def is_primary_process() -> bool:
    """Whether this process writes the run directory (config, metrics, artifacts)."""
    return global_rank_from_env() == 0


def gather_full_model(trainer: L.Trainer, model: nn.Module) -> None:
    """After an FSDP fit, turn `model` back into a plain module with full weights, on every rank.

    FSDP leaves each rank with its shard, and its wrappers all-gather on every forward (a
    collective rank 0 cannot run alone while it evaluates). This gathers the full weights once
    (every rank must call it), then replaces each FSDP wrapper by the block it wraps. Other
    strategies leave a plain, full model: nothing to do.
    """
    if isinstance(trainer.strategy, ModelParallelStrategy):
        if trainer.strategy.device_mesh["data_parallel"].size() > 1:
            gather_fully_sharded(model)  # FSDP2 across replicas: whole weights first
        gather_tensor_parallel(model)
        return
    if not isinstance(trainer.strategy, FSDPStrategy):
        return
    with FullyShardedDataParallel.summon_full_params(trainer.strategy.model, writeback=False):
        full = {id(p): p.detach().clone() for p in model.parameters()}
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, FullyShardedDataParallel):
                setattr(parent, name, child.module)
    for param in model.parameters():
        param.data = full[id(param)]
