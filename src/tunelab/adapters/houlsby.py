"""Bottleneck adapters (Houlsby et al., 2019, arXiv:1902.00751), the classic "Adapter".

peft has none, so this small peft-style wrapper adds them: after the attention output projection
and after the MLP down projection of every block, `y + up(act(down(y)))` with `up` zero-initialised
so training starts from the base model exactly. Only the adapters (and nothing of the base) train.

Export: the bottleneck is nonlinear, so it cannot be folded into the base's weights; the artifact
(`houlsby.safetensors` + `houlsby.json`) is loaded back onto the base with `HoulsbyAdapter.load`.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from transformers import PreTrainedModel

from tunelab.adapters.base import Adapter, ExportError, wrap_linears
from tunelab.core.config import ConfigError

WEIGHTS = "houlsby.safetensors"
CONFIG = "houlsby.json"


class Bottleneck(nn.Module):
    """d -> bottleneck -> d with a nonlinearity; zero output at initialisation."""

    def __init__(self, dim: int, bottleneck: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)
        self.act = nn.GELU()
        self.dropout = nn.Dropout(dropout)
        self.up = nn.Linear(bottleneck, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.up(self.dropout(self.act(self.down(x))))


class WithAdapter(nn.Module):
    """A frozen module followed by a residual bottleneck adapter on its output."""

    def __init__(self, base_layer: nn.Module, adapter: Bottleneck) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.adapter = adapter

    def forward(self, x: Tensor) -> Tensor:
        y = self.base_layer(x)
        return y + self.adapter(y)


class HoulsbyAdapter(Adapter):
    """Insert a `Bottleneck` after each module named in `after_modules` (by last name part)."""

    def __init__(
        self,
        name: str,
        lr: float,
        bottleneck: int,
        dropout: float = 0.0,
        after_modules: list[str] | tuple[str, ...] = ("o_proj", "down_proj"),
    ) -> None:
        super().__init__(name, lr)
        if bottleneck < 1:
            raise ConfigError(f"adapter.bottleneck={bottleneck} (from rank): must be at least 1")
        self.bottleneck = bottleneck
        self.dropout = dropout
        self.after_modules = list(after_modules)

    def with_adapter(self, layer: nn.Linear) -> nn.Module:
        """`layer` followed by a new bottleneck on its output, on the layer's device and dtype."""
        adapter = Bottleneck(layer.out_features, self.bottleneck, self.dropout)
        adapter.to(device=layer.weight.device, dtype=layer.weight.dtype)
        return WithAdapter(layer, adapter)

    def apply(self, model: nn.Module) -> nn.Module:
        model.requires_grad_(False)
        wrapped = wrap_linears(model, self.after_modules, self.with_adapter)
        if wrapped == 0:
            raise ConfigError(f"adapter.after_modules={self.after_modules}: no linear layer has these names")
        return model

    def save(self, model: nn.Module, out_dir: Path) -> Path:
        target = out_dir / "adapter"
        target.mkdir(parents=True, exist_ok=True)
        weights = {n: p.detach().contiguous() for n, p in model.named_parameters() if ".adapter." in n}
        save_file(weights, target / WEIGHTS)
        spec = {"bottleneck": self.bottleneck, "after_modules": self.after_modules}
        (target / CONFIG).write_text(json.dumps(spec, indent=2) + "\n")
        return target

    def load(self, base: PreTrainedModel, artifact: Path) -> nn.Module:
        spec = json.loads((artifact / CONFIG).read_text())
        loader = HoulsbyAdapter(self.name, self.lr, spec["bottleneck"], 0.0, spec["after_modules"])
        model = loader.apply(base)
        missing = model.load_state_dict(load_file(artifact / WEIGHTS), strict=False)
        if missing.unexpected_keys:
            raise ValueError(f"{artifact / WEIGHTS}: unexpected keys {missing.unexpected_keys[:3]}")
        return model.eval()

    def merge_refusal(self) -> str | None:
        return "its bottleneck adapters are nonlinear, so no weight of the base can absorb them"

    def merge(self, model: nn.Module) -> PreTrainedModel:
        raise ExportError(
            f"adapter={self.name} cannot be merged into a standalone model: {self.merge_refusal()}. "
            "Load the adapter directory onto the base with tunelab.adapters.houlsby.HoulsbyAdapter.load"
        )
