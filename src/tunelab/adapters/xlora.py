"""X-LoRA (Buehler & Buehler, 2024, arXiv:2402.07148): frozen LoRA experts mixed per token by a
trained gate that reads the base model's hidden states (peft's `XLoraConfig`).

The experts are finished LoRA runs (one per task: `python train.py data.train.task=<task>`); this
adapter trains only the gate, on whatever data the run selects (`data=multitask`). What peft 0.21
leaves out: it names experts by position ("0", "1", ...), so the yaml's `experts` mapping keeps the
task names; it needs `use_cache=False` on the base; and `save_pretrained` writes the experts but
not the trained gate, which is saved and restored here beside them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from peft import PeftModel, XLoraConfig, get_peft_model
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import PreTrainedModel

from tunelab.adapters.peft_adapter import PeftAdapter
from tunelab.core.config import ConfigError

GATE = "xlora_gate.safetensors"
EXPERTS = "xlora_experts.json"


def expert_dir(task: str, path: str) -> Path:
    """The peft adapter directory of a finished LoRA run (the run dir or its adapter/)."""
    p = Path(path)
    for candidate in (p, p / "adapter"):
        if (candidate / "adapter_config.json").is_file():
            return candidate
    raise ConfigError(
        f"adapter.experts.{task}={path}: no peft adapter there (expected {p}/adapter_config.json "
        f"or {p}/adapter/adapter_config.json from a finished LoRA run)"
    )


class XLoraAdapter(PeftAdapter):
    """A learned per-token gate over frozen per-task LoRA experts."""

    def __init__(self, name: str, lr: float, experts: Any, xlora: Any) -> None:
        if isinstance(experts, DictConfig):
            experts = OmegaConf.to_container(experts, resolve=True)
        if not experts:
            raise ConfigError(
                f"adapter={name}: adapter.experts is empty; give one finished LoRA run per task, e.g. "
                "+adapter.experts.arithmetic=results/multi/arithmetic"
            )
        self.experts = {task: expert_dir(task, str(path)) for task, path in experts.items()}
        self.xlora = (
            OmegaConf.to_container(xlora, resolve=True) if isinstance(xlora, DictConfig) else dict(xlora)
        )
        super().__init__(name, None, lr)  # type: ignore[arg-type]  # the config needs the model

    def config_for(self, model: nn.Module) -> XLoraConfig:
        # peft loads the experts as "0", "1", ... and activates them by these keys.
        adapters = {str(i): str(path) for i, path in enumerate(self.experts.values())}
        return XLoraConfig(
            task_type="CAUSAL_LM", hidden_size=model.config.hidden_size, adapters=adapters, **self.xlora
        )

    def apply(self, model: nn.Module) -> nn.Module:
        model.config.use_cache = False  # X-LoRA's two-pass forward refuses a KV cache
        return get_peft_model(model, self.config_for(model))

    def save(self, model: nn.Module, out_dir: Path) -> Path:
        target = super().save(model, out_dir)
        save_file({k: v.contiguous() for k, v in gate(model).state_dict().items()}, str(target / GATE))
        (target / EXPERTS).write_text(json.dumps({"experts": list(self.experts)}, indent=2) + "\n")
        return target

    def load(self, base: PreTrainedModel, artifact: Path) -> nn.Module:
        base.config.use_cache = False
        model = PeftModel.from_pretrained(base, artifact)
        gate(model).load_state_dict(load_file(str(artifact / GATE)))
        return model

    def merge_refusal(self) -> str | None:
        return (
            "X-LoRA weighs its experts per token by a gate computed from the input, which no single "
            "weight update reproduces"
        )


def gate(model: nn.Module) -> nn.Module:
    """The trained X-LoRA classifier (the gate) inside a peft X-LoRA model."""
    for name, module in model.named_modules():
        if name.endswith("internal_xlora_classifier"):
            return module
    raise TypeError(f"{type(model).__name__} holds no X-LoRA classifier")
