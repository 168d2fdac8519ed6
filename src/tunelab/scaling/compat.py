"""Combinations of precision, quantization, adapter, optimizer and strategy that cannot work.

`check(cfg)` runs before the model loads and raises one ConfigError naming the keys at fault.
Each rule is a small function of (config, machine) returning a message or None; RULES is the
table `check` walks, so adding a rule is one function and one line.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from tunelab.core.config import ConfigError


@dataclass(frozen=True)
class Machine:
    """What this machine offers, detected once (tests pass their own)."""

    cuda_devices: int = 0
    cuda_bf16: bool = False
    packages: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def detect(cls) -> Machine:
        cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
        optional = ("deepspeed",)
        return cls(
            cuda_devices=cuda,
            cuda_bf16=bool(cuda) and torch.cuda.is_bf16_supported(),
            packages=frozenset(p for p in optional if importlib.util.find_spec(p) is not None),
        )


def accelerator(cfg: DictConfig, machine: Machine) -> str:
    """The device type the Trainer will use: 'cuda' or 'cpu' (Lightning's 'auto' rule)."""
    chosen = str(cfg.trainer.get("accelerator", "auto"))
    if chosen == "auto":
        return "cuda" if machine.cuda_devices else "cpu"
    return "cuda" if chosen == "gpu" else chosen


def strategy_facts(cfg: DictConfig) -> DictConfig:
    """What the strategy config declares about itself (`scaling.strategy`, see conf/strategy/)."""
    return OmegaConf.select(cfg, "scaling.strategy", default=None) or OmegaConf.create({})


def precision_facts(cfg: DictConfig) -> DictConfig:
    """What the precision config declares about itself (`scaling.precision`, see conf/precision/)."""
    return OmegaConf.select(cfg, "scaling.precision", default=None) or OmegaConf.create({})


def sharded(cfg: DictConfig) -> str | None:
    """The strategy's kind ('fsdp', 'deepspeed', ...) when it shards any training state; else None."""
    facts = strategy_facts(cfg)
    return str(facts.kind) if facts.get("shards") else None


# --- rules -------------------------------------------------------------------------------------


def precision_needs_cuda(cfg: DictConfig, m: Machine) -> str | None:
    facts = precision_facts(cfg)
    reason = facts.get("needs_cuda")
    if reason and accelerator(cfg, m) != "cuda":
        return (
            f"trainer.precision={cfg.trainer.precision} (precision={facts.get('name')}) on accelerator "
            f"'{accelerator(cfg, m)}': {reason}; use precision=bf16_mixed or fp32"
        )
    return None


def bf16_needs_support(cfg: DictConfig, m: Machine) -> str | None:
    precision = str(cfg.trainer.precision)
    if precision.startswith("bf16") and accelerator(cfg, m) == "cuda" and not m.cuda_bf16:
        return f"trainer.precision={precision}: this GPU has no bf16 (pre-Ampere); use precision=fp16_mixed"
    return None


def quantized_base_needs_peft(cfg: DictConfig, m: Machine) -> str | None:
    """A bitsandbytes base is frozen storage: only methods that add weights on top can train it."""
    if cfg.get("quantization") is None:
        return None
    from tunelab.adapters.peft_adapter import PeftAdapter

    target = cfg.adapter._target_
    if not issubclass(get_class(target), PeftAdapter):
        return (
            f"quantization (bits={cfg.quantization.bits}) with adapter={cfg.adapter.name} "
            f"({target}): a quantized base cannot be trained itself; use a peft adapter "
            "(adapter=lora/dora/...) or drop quantization"
        )
    return None


def quantized_base_supported(cfg: DictConfig, m: Machine) -> str | None:
    """A peft tuner whose yaml states why it cannot run on a bitsandbytes base (`unquantizable`)."""
    reason = cfg.adapter.get("unquantizable")
    if reason and (cfg.get("quantization") is not None or cfg.adapter.get("quantization") is not None):
        return (
            f"quantization with adapter={cfg.adapter.name}: {reason}; use a float base (drop "
            "quantization) or an adapter that trains on one (adapter=lora/dora/vera/...)"
        )
    return None


def one_quantization(cfg: DictConfig, m: Machine) -> str | None:
    """adapter=qlora brings its own quantization: a different top-level one would be ignored."""
    q, aq = cfg.get("quantization"), cfg.adapter.get("quantization")
    if q is not None and aq is not None and dict(q) != dict(aq):
        return (
            f"quantization={dict(q)} and adapter.quantization={dict(aq)} (adapter={cfg.adapter.name}) "
            "disagree; use adapter=lora with quantization=..., or adapter=qlora alone"
        )
    return None


def strategy_packages(cfg: DictConfig, m: Machine) -> str | None:
    package = strategy_facts(cfg).get("needs_package")
    if package and package not in m.packages:
        return (
            f"trainer.strategy={cfg.trainer.strategy._target_}: {package} is not installed; "
            f"`pip install -e .[{package}]` (a CUDA machine) or use strategy=fsdp"
        )
    return None


def devices_available(cfg: DictConfig, m: Machine) -> str | None:
    devices = cfg.trainer.get("devices", "auto")
    if accelerator(cfg, m) == "cuda" and isinstance(devices, int) and devices > m.cuda_devices:
        return f"trainer.devices={devices} but this machine has {m.cuda_devices} CUDA device(s)"
    return None


def strategy_needs_cuda(cfg: DictConfig, m: Machine) -> str | None:
    facts = strategy_facts(cfg)
    if facts.get("needs_cuda") and accelerator(cfg, m) != "cuda":
        return (
            f"trainer.strategy={facts.kind} (strategy={facts.kind}*) on accelerator "
            f"'{accelerator(cfg, m)}': {facts.needs_cuda}; on CPU use strategy=ddp"
        )
    return None


def quantized_base_unsharded(cfg: DictConfig, m: Machine) -> str | None:
    """bitsandbytes' packed 4/8-bit weights are not shardable tensors for FSDP/ZeRO-3/TP here."""
    if cfg.get("quantization") is not None or cfg.adapter.get("quantization") is not None:
        kind = sharded(cfg)
        if kind:
            return (
                f"quantization with trainer.strategy={kind}: a bitsandbytes base is not sharded "
                "by this harness; use strategy=single or strategy=ddp"
            )
    return None


def galore_unsharded(cfg: DictConfig, m: Machine) -> str | None:
    """GaLore projects whole weight matrices' gradients: a shard has the wrong shape."""
    from tunelab.adapters.galore import is_galore_optimizer

    target = str(cfg.optimizer.optimizer._target_)
    kind = sharded(cfg)
    if kind and is_galore_optimizer(target):
        return (
            f"optimizer.optimizer._target_={target} with trainer.strategy={kind}: GaLore needs "
            "whole weight matrices; use strategy=single or strategy=ddp"
        )
    return None


def strategy_refuses_clipping(cfg: DictConfig, m: Machine) -> str | None:
    """A strategy that declares it cannot clip gradient norms (tensor parallel, FSDP2)."""
    facts = strategy_facts(cfg)
    if facts.get("refuses_clipping") and cfg.trainer.get("gradient_clip_val"):
        return (
            f"trainer.gradient_clip_val={cfg.trainer.gradient_clip_val} with strategy={facts.kind}: "
            f"{facts.refuses_clipping}; set trainer.gradient_clip_val=null"
        )
    return None


def strategy_refuses_peft(cfg: DictConfig, m: Machine) -> str | None:
    """A strategy whose parallel plan splits the base's own modules, not peft's wrappers."""
    from tunelab.adapters.peft_adapter import PeftAdapter

    facts = strategy_facts(cfg)
    if facts.get("refuses_peft") and issubclass(get_class(cfg.adapter._target_), PeftAdapter):
        return f"adapter={cfg.adapter.name} with strategy={facts.kind}: {facts.refuses_peft}"
    return None


def validation_needs_data(cfg: DictConfig, m: Machine) -> str | None:
    """A validation loop (early stopping monitors it) needs examples held out of training."""
    if cfg.trainer.get("limit_val_batches") and not cfg.data.get("val_size"):
        return (
            f"trainer.limit_val_batches={cfg.trainer.limit_val_batches} (validation on, e.g. "
            f"early_stopping=val_loss) but data.val_size={cfg.data.get('val_size')}: hold out some "
            "examples with data.val_size=N"
        )
    return None


RULES: list[Callable[[DictConfig, Machine], str | None]] = [
    precision_needs_cuda,
    bf16_needs_support,
    quantized_base_needs_peft,
    quantized_base_supported,
    one_quantization,
    strategy_packages,
    devices_available,
    strategy_needs_cuda,
    quantized_base_unsharded,
    galore_unsharded,
    strategy_refuses_clipping,
    strategy_refuses_peft,
    validation_needs_data,
]


def problems(cfg: DictConfig, machine: Machine | None = None) -> list[str]:
    """Every rule's complaint about `cfg` on `machine` (this one by default)."""
    machine = machine or Machine.detect()
    return [msg for rule in RULES if (msg := rule(cfg, machine)) is not None]


def check(cfg: DictConfig, machine: Machine | None = None) -> None:
    """Raise ConfigError naming the keys of every impossible combination in `cfg`."""
    found = problems(cfg, machine)
    if found:
        raise ConfigError("incompatible configuration:\n  - " + "\n  - ".join(found))
