"""Estimate training memory per device from the composed config, before anything is loaded.

Parameter shapes come from the real architecture built on the meta device (no weights, no bytes),
with the run's adapter applied to it, so trainable counts are peft's own. Bytes per parameter then
follow from what the precision, quantization and optimizer configs declare (`scaling.precision`,
`optimizer.state_memory`); activations from a per-block
formula; a sharding strategy divides what it shards by the number of devices.

Weights, gradients and optimizer state are checked against the bytes a real tiny-model run
allocates (tests/unit/test_memory.py); activations are a formula and only an estimate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig
from peft import PeftModel, get_peft_model
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig

from tunelab.adapters.base import Adapter, build_adapter
from tunelab.core.config import ConfigError
from tunelab.scaling.compat import precision_facts, sharded, strategy_facts

# Architectures of hub models the configs name, shipped so the estimator works offline.
SHAPES = Path(__file__).parent / "shapes"
GIB = 1024**3


def model_config(name_or_path: str) -> PretrainedConfig:
    """The model's config.json: shipped shape, local directory, or the hub (cached)."""
    shipped = SHAPES / name_or_path
    source = str(shipped) if (shipped / "config.json").is_file() else name_or_path
    try:
        return AutoConfig.from_pretrained(source)
    except OSError as err:
        raise ConfigError(
            f"model.name_or_path={name_or_path!r}: no config.json found locally, in {SHAPES}, "
            f"or in the hub cache ({err})"
        ) from None


def meta_model(config: PretrainedConfig, dtype: torch.dtype) -> nn.Module:
    """The architecture with every tensor on the meta device: shapes and dtypes, no storage."""
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, dtype=dtype)


def quantized_weights(model: nn.Module) -> set[int]:
    """ids of the weights tunelab's quantization replaces: block linears, not the output head."""
    head = model.get_output_embeddings()
    return {id(m.weight) for m in model.modules() if type(m) is nn.Linear and m is not head}


# --- bytes per tensor -------------------------------------------------------------------------


def quantized_bytes(shape: torch.Size, q: dict) -> int:
    """bitsandbytes storage of one weight: 4-bit packs two per byte plus one fp32 absmax per block
    of 64 (double quantization: one byte per block plus fp32 per 256 blocks and a 256-entry map);
    LLM.int8 keeps one byte per weight plus one fp32 scale per output row."""
    numel = shape.numel()
    if q["bits"] == 8:
        return numel + 4 * shape[0]
    blocks = math.ceil(numel / 64)
    scales = blocks + 4 * math.ceil(blocks / 256) + 4 * 256 + 4 if q.get("double_quant") else 4 * blocks
    return math.ceil(numel / 2) + scales + 4 * 16  # + the 16-value NF4/FP4 code book


def adam_state(p: torch.Tensor, dtype_bytes: int, opt: DictConfig, group: dict) -> int:
    """torch AdamW: exp_avg and exp_avg_sq in the parameter's dtype, plus a fp32 step."""
    return 2 * p.numel() * dtype_bytes + 4


def adam_8bit_state(p: torch.Tensor, dtype_bytes: int, opt: DictConfig, group: dict) -> int:
    """bitsandbytes 8-bit Adam: two uint8 moments with fp32 absmax per 256 values (the two 256-entry
    code books are shared by all parameters: 2 KiB, left out); tensors under 4096 values
    (min_8bit_size) keep two fp32 moments instead."""
    n = p.numel()
    if n < opt.get("min_8bit_size", 4096):
        return 2 * n * 4
    return 2 * n + 2 * 4 * math.ceil(n / 256)


def adam_32bit_state(p: torch.Tensor, dtype_bytes: int, opt: DictConfig, group: dict) -> int:
    """bitsandbytes 32-bit (paged) Adam: two fp32 moments whatever the parameter's dtype."""
    return 2 * p.numel() * 4


def sgd_state(p: torch.Tensor, dtype_bytes: int, opt: DictConfig, group: dict) -> int:
    """SGD: one momentum buffer, none without momentum."""
    return p.numel() * dtype_bytes if opt.get("momentum", 0) else 0


def adafactor_state(p: torch.Tensor, dtype_bytes: int, opt: DictConfig, group: dict) -> int:
    """transformers' Adafactor: fp32 row and column second-moment factors for a matrix, a full fp32
    second moment for a vector, a fp32 first moment only when beta1 is set."""
    shape = p.shape
    second = (shape[:-1].numel() + (shape[:-2] + shape[-1:]).numel()) if len(shape) >= 2 else p.numel()
    first = p.numel() if opt.get("beta1") is not None else 0
    return 4 * (second + first)


def projected_shape(p: torch.Tensor, rank: int) -> tuple[torch.Size, int]:
    """GaLore's projected gradient of an (m, n) weight and its projector's size (galore-torch's
    `std` projection: the larger side stays, the smaller is projected to `rank`)."""
    m, n = p.shape
    large, small = max(m, n), min(m, n)
    return torch.Size([large, min(rank, small)]), min(rank, small) * small


def galore(inner: Callable[[torch.Tensor, int, DictConfig, dict], int]) -> Callable:
    """A GaLore state formula: `inner`'s state of the projected gradient, plus the fp32 projector,
    for the tensors of the group that carries GaLore's `rank`; `inner` as it is for the others."""

    def state(p: torch.Tensor, dtype_bytes: int, opt: DictConfig, group: dict) -> int:
        if "rank" not in group or p.dim() != 2:
            return inner(p, dtype_bytes, opt, group)
        shape, projector = projected_shape(p, int(group["rank"]))
        return inner(torch.empty(shape, device="meta"), 4, opt, {}) + 4 * projector

    state.__doc__ = f"GaLore over {inner.__name__}"
    return state


# The optimizer configs name their formula (`state_memory:` in conf/optimizer/*.yaml).
STATE_FORMULAS: dict[str, Callable[[torch.Tensor, int, DictConfig, dict], int]] = {
    "adam": adam_state,
    "adam_8bit": adam_8bit_state,
    "adam_32bit": adam_32bit_state,
    "sgd": sgd_state,
    "adafactor": adafactor_state,
    "galore_adam": galore(adam_32bit_state),  # GaLore keeps fp32 moments of the projected gradient
    "galore_adam_8bit": galore(adam_8bit_state),
    "galore_adafactor": galore(adafactor_state),
}


# --- activations -------------------------------------------------------------------------------


def activation_bytes(
    config: PretrainedConfig,
    batch: int,
    seq: int,
    elem: int,
    checkpointing: bool,
    eager: bool,
    norms_train: bool = False,
) -> int:
    """Tensors autograd keeps for backward, for a Llama-style block (after Korthikanti et al.,
    2022, arXiv:2205.05198, adapted to RMSNorm + grouped-query attention + SwiGLU), as counted
    by saved-tensor hooks on SmolLM2-135M and the tiny model (tests/unit/test_memory.py):

    per block, in elements of batch*seq: the two norm inputs and outputs (4h), rotated q and the
    k/v projections (h + 2*kv), attention output (h), gate, up, silu(gate), product (4i); plus
    the b*heads*s^2 attention probabilities only with eager attention (SDPA/flash recompute them).
    When the norm weights train (full fine-tuning) each norm also keeps its normalised input for
    the weight's gradient: +2h per block, +2h for the final norm and +h for the output head's input.
    The loss keeps one fp32 log-softmax over the vocabulary per token (4*vocab bytes): an upper
    bound, since SFT runs the head only at supervised positions. Gradient checkpointing keeps
    each block's input only, plus one block's activations being recomputed.
    """
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or h // heads
    kv = getattr(config, "num_key_value_heads", heads) * head_dim
    tokens = batch * seq
    block = tokens * (6 * h + 2 * kv + 4 * i + (2 * h if norms_train else 0)) * elem
    if eager:
        block += batch * heads * seq * seq * elem
    logits = tokens * config.vocab_size * 4 + (tokens * 3 * h * elem if norms_train else 0)
    if checkpointing:
        return layers * tokens * h * elem + block + logits
    return layers * block + logits


def loss_buffer_bytes(config: PretrainedConfig, tokens: int) -> int:
    """Transient fp32 buffers at the start of backward, beside the saved activations: the gradient
    of the log-softmax and the gradient of the logits, one vocabulary row per token each (the
    largest short-lived tensors for a 49k-vocabulary model; measured on SmolLM2, docs/scaling.md)."""
    return 2 * tokens * config.vocab_size * 4


def norms_train(model: nn.Module) -> bool:
    """Whether the normalisation layers' weights train (full fine-tuning; LoRA freezes them)."""
    return any(
        p.requires_grad and len(parts) > 1 and "norm" in parts[-2]
        for name, p in model.named_parameters()
        for parts in [name.split(".")]
    )


# --- sharding ----------------------------------------------------------------------------------


@dataclass
class Sharding:
    """Which of (weights, gradients, optimizer state) a strategy divides across `ways` devices,
    and which it offloads to CPU RAM."""

    shards: frozenset[str] = frozenset()
    offload: frozenset[str] = frozenset()
    ways: int = 1


def sharding(cfg: DictConfig) -> Sharding:
    """How the strategy spreads the training state: what its config declares (`scaling.strategy`:
    shards, offload, ways) over `trainer.devices` x `num_nodes`."""
    facts = strategy_facts(cfg)
    devices = cfg.trainer.get("devices", 1)
    per_node = devices if isinstance(devices, int) else 1
    ways = {"world": per_node * int(cfg.trainer.get("num_nodes", 1)), "node": per_node}
    tp = (
        cfg.trainer.strategy.get("tensor_parallel_size")
        if isinstance(cfg.trainer.strategy, DictConfig)
        else None
    )
    ways["tensor_parallel_size"] = per_node if tp in (None, "auto") else int(tp)
    shards = frozenset(facts.get("shards") or [])
    return Sharding(
        shards, frozenset(facts.get("offload") or []), ways[str(facts.get("ways", "world"))] if shards else 1
    )


# --- the estimate ------------------------------------------------------------------------------


@dataclass
class Estimate:
    """Bytes per device (accelerator) and offloaded to CPU RAM, with the counts behind them."""

    weights: int
    gradients: int
    optimizer_state: int
    activations: int
    trainable_params: int
    total_params: int
    cpu_offloaded: int = 0
    notes: list[str] = field(default_factory=list)
    loss_buffers: int = 0

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer_state + self.activations + self.loss_buffers

    def report(self) -> str:
        """A short table in GiB."""
        rows = [
            ("weights", self.weights),
            ("gradients", self.gradients),
            ("optimizer state", self.optimizer_state),
            ("activations", self.activations),
            ("loss backward buffers", self.loss_buffers),
            ("total per device", self.total),
        ]
        if self.cpu_offloaded:
            rows.append(("offloaded to CPU RAM", self.cpu_offloaded))
        lines = [f"{name:22s} {b / GIB:9.2f} GiB" for name, b in rows]
        lines.insert(0, f"params: {self.total_params:,} total, {self.trainable_params:,} trainable")
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def adapted_model(cfg: DictConfig, model: nn.Module) -> tuple[nn.Module, Adapter]:
    """The meta model with the run's adapter (peft's own wrapping for peft methods) and the
    objective's own trainable parts (a reward or value head), built by the code a run uses."""
    adapter = build_adapter(cfg.adapter)
    peft_config = getattr(adapter, "peft_config", None)
    model = get_peft_model(model, peft_config) if peft_config is not None else adapter.apply(model)
    instantiate(cfg.objective).prepare_model(model)
    return model, adapter


def state_formula(cfg: DictConfig, notes: list[str]) -> Callable:
    """The optimizer config's declared state formula (`optimizer.state_memory`)."""
    name = cfg.optimizer.get("state_memory")
    if name not in STATE_FORMULAS:
        notes.append(
            f"optimizer.state_memory={name!r} is not one of {sorted(STATE_FORMULAS)}: "
            "state estimated as AdamW's"
        )
        return adam_state
    return STATE_FORMULAS[name]


def group_of(model: nn.Module, adapter: Adapter) -> dict[int, dict]:
    """Each trainable tensor's optimizer param group options (GaLore's rank lives there)."""
    groups = adapter.param_groups(model) if hasattr(adapter, "param_groups") else None
    if not groups:
        return {}
    return {id(p): {k: v for k, v in g.items() if k != "params"} for g in groups for p in g["params"]}


def reference_copy_bytes(cfg: DictConfig, model: nn.Module, weights: int) -> int:
    """A frozen copy of the model when the objective keeps a reference and the adapter cannot be
    switched off to give one (full fine-tuning: tunelab.objectives.reference.build_reference)."""
    needs_reference = bool(getattr(get_class(cfg.objective._target_), "needs_reference", False))
    return weights if needs_reference and not isinstance(model, PeftModel) else 0


def estimate(cfg: DictConfig) -> Estimate:
    """Memory per device for the run `cfg` describes (batch and length from `cfg.data`)."""
    precision = precision_facts(cfg)
    elem, cast_16 = int(precision.get("activation_bytes", 4)), bool(precision.get("weights_16bit", False))
    config = model_config(cfg.model.name_or_path)
    model = meta_model(config, getattr(torch, cfg.model.get("dtype", "float32")))
    quant = cfg.get("quantization") or cfg.adapter.get("quantization")
    quantized = quantized_weights(model) if quant is not None else set()
    model, adapter = adapted_model(cfg, model)
    notes: list[str] = []
    state_fn, opt, groups = state_formula(cfg, notes), cfg.optimizer.optimizer, group_of(model, adapter)

    weights = grads = state = trainable = total = 0
    for p in {id(p): p for p in model.parameters()}.values():
        dtype_bytes = 2 if cast_16 else p.element_size()
        total += p.numel()
        weights += quantized_bytes(p.shape, quant) if id(p) in quantized else p.numel() * dtype_bytes
        if p.requires_grad:
            trainable += p.numel()
            grads += p.numel() * dtype_bytes
            state += state_fn(p, dtype_bytes, opt, groups.get(id(p), {}))
    reference = reference_copy_bytes(cfg, model, weights)
    if reference:
        notes.append(f"objective={cfg.objective.name} keeps a frozen reference copy of the model")

    checkpointing = bool(cfg.get("gradient_checkpointing")) or bool(
        cfg.trainer.get("strategy", {}).get("activation_checkpointing", False)
        if isinstance(cfg.trainer.get("strategy"), DictConfig)
        else False
    )
    eager = cfg.model.get("attn_implementation") == "eager"
    acts = activation_bytes(
        config, cfg.data.batch_size, cfg.data.max_length, elem, checkpointing, eager, norms_train(model)
    )
    if sharded(cfg) == "tensor_parallel":
        notes.append("activations are not divided by the tensor-parallel size (an upper bound)")
    tokens = cfg.data.batch_size * cfg.data.max_length
    one_device = Estimate(weights + reference, grads, state, acts, trainable, total, notes=notes)
    one_device.loss_buffers = loss_buffer_bytes(config, tokens)
    return divide(one_device, sharding(cfg))


def divide(est: Estimate, plan: Sharding) -> Estimate:
    """Apply a strategy's sharding and offloading to a one-device estimate."""
    parts = {"weights": est.weights, "gradients": est.gradients, "optimizer_state": est.optimizer_state}
    offloaded = 0
    for name, value in parts.items():
        if name in plan.offload:
            offloaded += value // (plan.ways if name in plan.shards else 1)
            parts[name] = 0
        elif name in plan.shards:
            parts[name] = math.ceil(value / plan.ways)
    if plan.ways > 1:
        est.notes.append(f"{', '.join(sorted(plan.shards)) or 'nothing'} sharded {plan.ways} ways")
    return Estimate(
        parts["weights"],
        parts["gradients"],
        parts["optimizer_state"],
        est.activations,
        est.trainable_params,
        est.total_params,
        cpu_offloaded=offloaded,
        notes=est.notes,
        loss_buffers=est.loss_buffers,
    )


def estimate_beside_peak(cfg: DictConfig, baseline: int, peak: int | None) -> dict[str, Any]:
    """metrics.json fields putting the estimate beside the measured peak (`peak_memory_bytes`).

    `memory_estimate_bytes` = what the process held before the run (`baseline`, measured:
    tunelab.scaling.measure.memory_baseline) + the estimated training tensors, per part in
    `memory_estimate_parts`; `peak_over_estimate` = peak / that. Never raises: a config the
    estimator cannot read (a hub model without a local config.json) gives `memory_estimate_error`.
    """
    try:
        est = estimate(cfg)
    except Exception as err:  # an estimate must not fail a run that trained
        return {"memory_estimate_error": f"{type(err).__name__}: {err}"}
    parts = {
        "baseline": baseline,
        "weights": est.weights,
        "gradients": est.gradients,
        "optimizer_state": est.optimizer_state,
        "activations": est.activations,
        "loss_buffers": est.loss_buffers,
    }
    total = sum(parts.values())
    out: dict[str, Any] = {"memory_estimate_bytes": total, "memory_estimate_parts": parts}
    if peak:
        out["peak_over_estimate"] = peak / total
    return out
