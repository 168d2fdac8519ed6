"""Every method peft implements (LoRA and its variants, IA3, prompt methods) through one class.

The method itself is the `peft_config` node of the adapter yaml, instantiated by Hydra into
peft's own config class, so tunelab re-implements none of it. Subclasses add only what peft
leaves to the training script: LoRA+'s learning-rate groups, PiSSA's conversion on save, and
the prompt methods' refusal to merge.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from omegaconf import ListConfig
from peft import PeftConfig, PeftModel, get_peft_model
from torch import nn
from transformers import PreTrainedModel

from tunelab.adapters.base import Adapter, ExportError
from tunelab.core.config import ConfigError


class PeftAdapter(Adapter):
    """Wrap the base model with `peft.get_peft_model(model, peft_config)`.

    `unmergeable`: the yaml's own statement of why this tuner cannot fold into the weights (LiLy's
    shared projections, a bias adapter on a bias-free base); `merge` then refuses with it.
    `unquantizable`: likewise, why it cannot train on a bitsandbytes base (compat refuses the run).
    """

    def __init__(
        self,
        name: str,
        peft_config: PeftConfig,
        lr: float,
        unmergeable: str | None = None,
        unquantizable: str | None = None,
    ) -> None:
        super().__init__(name, lr)
        self.peft_config = peft_config
        self.unmergeable = unmergeable
        self.unquantizable = unquantizable  # compat.quantized_base_supported reads it from the yaml

    def prepare_base(self, model: nn.Module) -> nn.Module:
        """What happens to the base before peft wraps it (QLoRA quantizes it); identity here."""
        return model

    def apply(self, model: nn.Module) -> nn.Module:
        return get_peft_model(self.prepare_base(model), self.peft_config)

    def save(self, model: nn.Module, out_dir: Path) -> Path:
        if not isinstance(model, PeftModel):
            raise TypeError(f"adapter {self.name!r} expected a PeftModel, got {type(model).__name__}")
        target = out_dir / "adapter"
        model.save_pretrained(target, safe_serialization=True)
        return target

    def load(self, base: PreTrainedModel, artifact: Path) -> nn.Module:
        return PeftModel.from_pretrained(self.prepare_base(base), artifact)

    def merge_refusal(self) -> str | None:
        return self.unmergeable

    def merge(self, model: nn.Module) -> PreTrainedModel:
        refusal = self.merge_refusal()
        if refusal:
            raise ExportError(
                f"adapter={self.name} cannot be merged into a standalone model: {refusal}. "
                "Use the adapter directory with peft.PeftModel.from_pretrained("
                "AutoModelForCausalLM.from_pretrained(base), adapter_dir)"
            )
        return model.merge_and_unload()


class LoraPlusAdapter(PeftAdapter):
    """LoRA+ (Hayou et al., 2024, arXiv:2402.12354): B learns `lr_ratio` times faster than A.

    Done through the optimizer's parameter groups, so any optimizer config works unchanged.
    `base_lr` is the run's `lr` (the optimizer's default, which groups without "lr" keep).
    """

    def __init__(
        self, name: str, peft_config: PeftConfig, lr: float, base_lr: float, lr_ratio: float = 16.0
    ) -> None:
        super().__init__(name, peft_config, lr)
        if lr_ratio < 1:
            raise ConfigError(f"adapter.lr_ratio={lr_ratio}: LoRA+ needs lr(B)/lr(A) >= 1")
        self.base_lr = base_lr
        self.lr_ratio = lr_ratio

    def param_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        b = [p for n, p in trainable if "lora_B" in n]
        rest = [p for n, p in trainable if "lora_B" not in n]
        return [{"params": rest}, {"params": b, "lr": self.base_lr * self.lr_ratio}]


class PissaAdapter(PeftAdapter):
    """PiSSA (Meng et al., 2024, arXiv:2404.02948): LoRA initialised from the principal singular
    vectors of each weight, the base keeping the residual.

    Since the base weights change at initialisation, the saved adapter is converted (by peft) into
    an equivalent plain LoRA of rank 2r on the *original* base, so that it reloads and merges
    onto the model everyone else starts from.
    """

    def __init__(self, name: str, peft_config: PeftConfig, lr: float) -> None:
        super().__init__(name, peft_config, lr)
        self._initial = tempfile.TemporaryDirectory(prefix="tunelab-pissa-init-")

    def apply(self, model: nn.Module) -> nn.Module:
        peft_model = super().apply(model)
        # peft's documented recipe: save the initial adapter, marked so reloading skips the SVD.
        config = peft_model.peft_config["default"]
        init, config.init_lora_weights = config.init_lora_weights, True
        peft_model.save_pretrained(self._initial.name, safe_serialization=True)
        config.init_lora_weights = init
        return peft_model

    def save(self, model: nn.Module, out_dir: Path) -> Path:
        target = out_dir / "adapter"
        model.save_pretrained(
            target, safe_serialization=True, path_initial_model_for_weight_conversion=self._initial.name
        )
        return target


class PromptLearningAdapter(PeftAdapter):
    """Prompt tuning, P-Tuning, Prefix-Tuning, P-Tuning v2: trained virtual tokens or key/value
    prefixes. They target no modules, and nothing can be merged into the weights: the trained
    prompt *is* the artifact, used through `PeftModel.from_pretrained(base, run_dir/adapter)`.
    """

    def __init__(
        self, name: str, peft_config: PeftConfig, lr: float, target_modules: Any = "all-linear"
    ) -> None:
        super().__init__(name, peft_config, lr)
        if isinstance(target_modules, ListConfig):
            target_modules = list(target_modules)
        if target_modules != "all-linear":
            raise ConfigError(
                f"adapter={name} with target_modules={target_modules}: prompt methods train virtual "
                "tokens and target no modules; drop the target_modules override"
            )

    def merge_refusal(self) -> str | None:
        return "its trained virtual tokens are an extra input, not a weight change"
