"""Memory experts: many small LoRA experts per linear layer and a learned per-token router.

The idea of "memory tuning" (Lamini's mixture of memory experts, 2024): facts are stored in many
small experts, and a router picks the few that hold what a token needs, so new facts land in a
few experts instead of spreading over one shared update. Here, for each targeted `nn.Linear`
W (d_in -> d_out):

    g(x) = softmax over the top_k of router(x)            router: d_in -> K, no bias, trained
    y    = W x + (alpha / r) * sum_k g_k(x) * B_k A_k x   A_k: r x d_in, B_k: d_out x r

B_k starts at zero (so training starts from the base exactly), A_k as peft's LoRA A, the router
as torch initialises a linear layer. Trainable per layer: K*r*(d_in + d_out) + K*d_in. On square layers
(d_in = d_out = d) that is K*d*(2r + 1), a LoRA of rank K*(2r + 1)/2: with K = 8, r = 1, rank 12
(conf/comparison/memory_tuning.yaml pairs them). The routing depends on the input, so no single
weight update reproduces it: the artifact does not merge.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from transformers import PreTrainedModel

from tunelab.adapters.base import Adapter, ExportError, wrap_linears
from tunelab.core.config import ConfigError

WEIGHTS = "memory_experts.safetensors"
CONFIG = "memory_experts.json"


class MemoryExpertsLinear(nn.Module):
    """A frozen linear layer plus `experts` rank-`rank` LoRA experts mixed by a top-k router."""

    def __init__(self, base_layer: nn.Linear, experts: int, rank: int, top_k: int, alpha: float) -> None:
        super().__init__()
        self.base_layer = base_layer
        d_in, d_out = base_layer.in_features, base_layer.out_features
        self.top_k = top_k
        self.scaling = alpha / rank
        kw = {"device": base_layer.weight.device, "dtype": base_layer.weight.dtype}
        self.lora_A = nn.Parameter(torch.empty(experts, rank, d_in, **kw))
        self.lora_B = nn.Parameter(torch.zeros(experts, d_out, rank, **kw))
        self.router = nn.Linear(d_in, experts, bias=False, **kw)
        for a in self.lora_A:  # each expert's A as peft initialises LoRA's A
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))

    def gates(self, x: Tensor) -> Tensor:
        """Per-token expert weights (..., K): softmax over the top_k router logits, 0 elsewhere."""
        logits = self.router(x)
        top = logits.topk(self.top_k, dim=-1)
        return torch.zeros_like(logits).scatter(-1, top.indices, top.values.softmax(-1))

    def forward(self, x: Tensor) -> Tensor:
        z = torch.einsum("...i,kri->...kr", x, self.lora_A) * self.gates(x).unsqueeze(-1)
        return self.base_layer(x) + self.scaling * torch.einsum("...kr,kor->...o", z, self.lora_B)


def trainable_count(d_in: int, d_out: int, experts: int, rank: int) -> int:
    """Trainable parameters of one wrapped layer: the experts' A and B, and the router."""
    return experts * rank * (d_in + d_out) + experts * d_in


class MemoryExpertsAdapter(Adapter):
    """Wrap every `nn.Linear` whose last name part is in `target_modules` with memory experts."""

    def __init__(
        self,
        name: str,
        lr: float,
        experts: int,
        expert_rank: int,
        top_k: int,
        alpha: float,
        target_modules: list[str] | tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj"),
    ) -> None:
        super().__init__(name, lr)
        if experts < 1 or expert_rank < 1:
            raise ConfigError(
                f"adapter.experts={experts}, adapter.expert_rank={expert_rank}: both must be >= 1"
            )
        if not 1 <= top_k <= experts:
            raise ConfigError(f"adapter.top_k={top_k}: must be between 1 and adapter.experts={experts}")
        if isinstance(target_modules, str) or not target_modules:
            raise ConfigError(
                f"adapter.target_modules={target_modules!r}: expected a list of linear layer names, "
                "e.g. [q_proj, k_proj, v_proj, o_proj]"
            )
        self.experts, self.expert_rank, self.top_k, self.alpha = experts, expert_rank, top_k, alpha
        self.target_modules = list(target_modules)

    def spec(self) -> dict:
        return {
            "experts": self.experts,
            "expert_rank": self.expert_rank,
            "top_k": self.top_k,
            "alpha": self.alpha,
            "target_modules": self.target_modules,
        }

    def apply(self, model: nn.Module) -> nn.Module:
        model.requires_grad_(False)
        wrapped = wrap_linears(
            model,
            self.target_modules,
            lambda base: MemoryExpertsLinear(base, self.experts, self.expert_rank, self.top_k, self.alpha),
        )
        if wrapped == 0:
            raise ConfigError(
                f"adapter.target_modules={self.target_modules}: no linear layer has these names"
            )
        return model

    def save(self, model: nn.Module, out_dir: Path) -> Path:
        target = out_dir / "adapter"
        target.mkdir(parents=True, exist_ok=True)
        weights = {n: p.detach().contiguous() for n, p in model.named_parameters() if p.requires_grad}
        save_file(weights, target / WEIGHTS)
        (target / CONFIG).write_text(json.dumps(self.spec(), indent=2) + "\n")
        return target

    def load(self, base: PreTrainedModel, artifact: Path) -> nn.Module:
        spec = json.loads((artifact / CONFIG).read_text())
        model = MemoryExpertsAdapter(self.name, self.lr, **spec).apply(base)
        result = model.load_state_dict(load_file(artifact / WEIGHTS), strict=False)
        missing = [k for k in result.missing_keys if "lora_" in k or "router" in k]
        if result.unexpected_keys or missing:
            raise ValueError(
                f"{artifact / WEIGHTS}: unexpected keys {result.unexpected_keys[:3]}, missing {missing[:3]}"
            )
        return model.eval()

    def merge_refusal(self) -> str | None:
        return (
            "its router weighs the experts per token from the input, which no single weight update reproduces"
        )

    def merge(self, model: nn.Module) -> PreTrainedModel:
        raise ExportError(
            f"adapter={self.name} cannot be merged into a standalone model: {self.merge_refusal()}. "
            "Load the adapter directory onto the base with "
            "tunelab.adapters.memory_experts.MemoryExpertsAdapter.load"
        )
