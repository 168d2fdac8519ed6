"""Megatron-style tensor parallelism (Shoeybi et al., 2019, arXiv:1909.08053) for Llama-style
blocks, applied by TuneLabModule.configure_model under Lightning's ModelParallelStrategy.

Per block: q/k/v and gate/up are split by output columns (each rank computes its own heads and its
own slice of the MLP's hidden units), o and down by input rows, whose partial outputs are summed
by one all-reduce. Attention reshapes with `-1` heads, so a rank's local heads need no config
change. Across data-parallel replicas (several nodes) each block is sharded with FSDP2.
"""

from __future__ import annotations

from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

from tunelab.adapters.base import decoder_layers
from tunelab.core.config import ConfigError

# Module paths inside one Llama/Mistral/Qwen2 decoder block and how each is split.
BLOCK_PLAN = {
    "self_attn.q_proj": ColwiseParallel,
    "self_attn.k_proj": ColwiseParallel,
    "self_attn.v_proj": ColwiseParallel,
    "self_attn.o_proj": RowwiseParallel,
    "mlp.gate_proj": ColwiseParallel,
    "mlp.up_proj": ColwiseParallel,
    "mlp.down_proj": RowwiseParallel,
}


def check_divisible(model: nn.Module, tp: int) -> None:
    """Heads and MLP width must split evenly over the tensor-parallel ranks."""
    config = model.config
    sizes = {
        "num_attention_heads": config.num_attention_heads,
        "num_key_value_heads": getattr(config, "num_key_value_heads", config.num_attention_heads),
        "intermediate_size": config.intermediate_size,
    }
    bad = {k: v for k, v in sizes.items() if v % tp}
    if bad:
        raise ConfigError(f"tensor_parallel_size={tp} does not divide the model's {bad}")


def apply_tensor_parallel(model: nn.Module, mesh: DeviceMesh) -> None:
    """Split every decoder block's linear layers over `mesh` (the tensor-parallel dimension)."""
    check_divisible(model, mesh.size())
    for block in decoder_layers(model):
        missing = [path for path in BLOCK_PLAN if block.get_submodule(path) is None]
        if missing:
            raise ConfigError(f"strategy=tensor_parallel: block has no {missing} (a Llama-style block)")
        parallelize_module(block, mesh, {path: style() for path, style in BLOCK_PLAN.items()})


def apply_data_parallel(model: nn.Module, mesh: DeviceMesh) -> None:
    """FSDP2 over the data-parallel replicas: each block, then the rest of the model."""
    from torch.distributed.fsdp import fully_shard

    for block in decoder_layers(model):
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)


def configure_model_parallel(model: nn.Module, mesh: DeviceMesh) -> None:
    """Apply the 2-D plan Lightning's ModelParallelStrategy set up: TP inside, FSDP2 across."""
    if mesh["tensor_parallel"].size() > 1:
        apply_tensor_parallel(model, mesh["tensor_parallel"])
    if mesh["data_parallel"].size() > 1:
        apply_data_parallel(model, mesh["data_parallel"])


def split_dtensor_groups(groups: list[dict]) -> list[dict]:
    """Each parameter group split into its DTensor (tensor-parallel) and plain parameters.

    foreach/fused optimizer kernels run per group and refuse to mix DTensors with plain tensors.
    """
    out = []
    for group in groups:
        params = list(group["params"])
        for keep in (True, False):
            part = [p for p in params if hasattr(p, "device_mesh") == keep]
            if part:
                out.append({**group, "params": part})
    return out


def gather_tensor_parallel(model: nn.Module) -> None:
    """After a tensor-parallel fit, make every block plain again: full weights, no TP hooks.

    A collective (every rank calls it): each split weight is all-gathered with `full_tensor()`.
    Evaluation and saving then run on rank 0 alone, as after any other strategy.
    """
    for block in decoder_layers(model):
        for path in BLOCK_PLAN:
            linear = block.get_submodule(path)
            for name, param in list(linear.named_parameters(recurse=False)):
                if hasattr(param, "full_tensor"):
                    full = param.full_tensor().detach()
                    setattr(linear, name, nn.Parameter(full, requires_grad=param.requires_grad))
            # The plan's input/output redistribution hooks live on these linear modules only.
            linear._forward_pre_hooks.clear()
            linear._forward_hooks.clear()


def gather_fully_sharded(model: nn.Module) -> None:
    """After an FSDP2 (`fully_shard`) fit, make the model plain again: full weights, no FSDP hooks.

    A collective (every rank calls it): each sharded parameter is all-gathered with
    `full_tensor()`; then every FSDP module gets its own class back and loses the hooks that would
    all-gather on each forward, so rank 0 can evaluate and save alone.
    """
    from torch.distributed.fsdp import FSDPModule

    for module in model.modules():
        for name, param in list(module.named_parameters(recurse=False)):
            if hasattr(param, "full_tensor"):
                full = param.full_tensor().detach()
                setattr(module, name, nn.Parameter(full, requires_grad=param.requires_grad))
    for module in model.modules():
        # fully_shard marks every module it manages; generate() would then sync with other ranks
        module.__dict__.pop("_is_fsdp_managed_module", None)
        if isinstance(module, FSDPModule):
            module._forward_pre_hooks.clear()
            module._forward_hooks.clear()
            module.__class__ = next(c for c in type(module).__mro__[1:] if not issubclass(c, FSDPModule))
