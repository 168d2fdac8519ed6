"""Structured pruning that shrinks tensor shapes: attention heads, MLP neurons, whole layers.

Units are ranked by a named importance score (`importance.py`) and the least important removed;
the model config is updated (`num_attention_heads`, `num_key_value_heads`, `intermediate_size`,
`num_hidden_layers`) so that `from_pretrained` rebuilds the smaller model. HF configs hold one
head count and one MLP width for all layers, so every layer keeps the same *number* of heads and
neurons (which ones differs per layer).

Heads are removed by key/value group: with grouped-query attention a KV head and the query heads
that share it go together, so the query/KV ratio is unchanged. With plain multi-head attention
(the tiny model) a group is one head. Written for the Llama layout (`self_attn.{q,k,v,o}_proj`,
`mlp.{gate,up,down}_proj`), shared by Qwen2, Mistral and SmolLM2.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from transformers import PreTrainedModel
from transformers.pytorch_utils import prune_linear_layer

from tunelab.adapters.base import decoder_layers
from tunelab.core.config import ConfigError
from tunelab.pruning.base import Pruner
from tunelab.pruning.importance import importance_fn, keep_top


def _shrink(layer: nn.Linear, index: Tensor, dim: int) -> nn.Linear:
    """`prune_linear_layer`, keeping the layer's dtype (it builds the new layer in the default one)."""
    return prune_linear_layer(layer, index, dim).to(dtype=layer.weight.dtype)


def _n_keep(total: int, fraction: float, what: str) -> int:
    keep = total - round(total * fraction)
    if keep < 1:
        raise ConfigError(f"prune.{what}={fraction}: would remove all {total} units; keep at least one")
    return keep


class StructuredPruner(Pruner):
    """Remove `head_fraction` of KV groups and `neuron_fraction` of MLP neurons in every layer, and
    the `drop_layers` least important layers, by the `importance` score."""

    def __init__(
        self,
        name: str,
        importance: str = "l2",
        head_fraction: float = 0.0,
        neuron_fraction: float = 0.0,
        drop_layers: int = 0,
    ) -> None:
        for key, value in (("head_fraction", head_fraction), ("neuron_fraction", neuron_fraction)):
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"prune.{key}={value}: expected a fraction in [0, 1)")
        if drop_layers < 0:
            raise ConfigError(f"prune.drop_layers={drop_layers}: expected >= 0")
        self.name = name
        self.score = importance_fn(importance)
        self.head_fraction = head_fraction
        self.neuron_fraction = neuron_fraction
        self.drop_layers = drop_layers

    @torch.no_grad()
    def prune(self, model: PreTrainedModel) -> PreTrainedModel:
        config = model.config
        config.head_dim = (
            getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        )
        if self.drop_layers:
            drop_layers(model, self.score, self.drop_layers)
        layers = decoder_layers(model)
        if self.head_fraction:
            groups = config.num_key_value_heads
            ratio = config.num_attention_heads // config.num_key_value_heads
            keep = valid_head_groups(
                _n_keep(groups, self.head_fraction, "head_fraction"), ratio, config.hidden_size
            )
            for layer in layers:
                prune_heads(layer.self_attn, self.score, keep, config.head_dim, groups)
            config.num_key_value_heads, config.num_attention_heads = keep, keep * ratio
        if self.neuron_fraction:
            keep = _n_keep(config.intermediate_size, self.neuron_fraction, "neuron_fraction")
            for layer in layers:
                prune_neurons(layer.mlp, self.score, keep)
            config.intermediate_size = keep
        return model


def valid_head_groups(keep: int, ratio: int, hidden_size: int) -> int:
    """The largest group count <= `keep` whose head count divides `hidden_size`.

    transformers (5.x) refuses to save or load a config whose hidden size is not a multiple of
    the number of attention heads, even with an explicit head_dim; so 6 heads of width 192 can
    become 4 or 3, not 5.
    """
    while keep > 1 and hidden_size % (keep * ratio):
        keep -= 1
    return keep


def prune_heads(attn: nn.Module, score, keep: int, head_dim: int, groups: int) -> None:
    """Keep the `keep` most important KV groups (each with its query heads) of one attention."""
    q_per_group = attn.q_proj.out_features // (head_dim * groups)

    def per_group(weight: Tensor, dim: int) -> Tensor:  # (groups, ...) view of a weight
        w = weight if dim == 0 else weight.t()
        return w.reshape(groups, -1)

    scores = score(
        [
            per_group(attn.q_proj.weight, 0),
            per_group(attn.k_proj.weight, 0),
            per_group(attn.v_proj.weight, 0),
            per_group(attn.o_proj.weight, 1),
        ]
    )
    kept = keep_top(scores, keep)
    kv_rows = (kept[:, None] * head_dim + torch.arange(head_dim)).flatten()
    q_size = q_per_group * head_dim
    q_rows = (kept[:, None] * q_size + torch.arange(q_size)).flatten()
    attn.q_proj = _shrink(attn.q_proj, q_rows, 0)
    attn.k_proj = _shrink(attn.k_proj, kv_rows, 0)
    attn.v_proj = _shrink(attn.v_proj, kv_rows, 0)
    attn.o_proj = _shrink(attn.o_proj, q_rows, 1)


def prune_neurons(mlp: nn.Module, score, keep: int) -> None:
    """Keep the `keep` most important intermediate neurons of a gated MLP."""
    scores = score([mlp.gate_proj.weight, mlp.up_proj.weight, mlp.down_proj.weight.t()])
    kept = keep_top(scores, keep)
    mlp.gate_proj = _shrink(mlp.gate_proj, kept, 0)
    mlp.up_proj = _shrink(mlp.up_proj, kept, 0)
    mlp.down_proj = _shrink(mlp.down_proj, kept, 1)


def drop_layers(model: PreTrainedModel, score, n_drop: int) -> None:
    """Remove the `n_drop` blocks whose weights score lowest; renumber the rest for the KV cache."""
    layers = decoder_layers(model)
    if n_drop >= len(layers):
        raise ConfigError(f"prune.drop_layers={n_drop}: the model has only {len(layers)} layers")
    scores = torch.stack([score([p.reshape(1, -1) for p in layer.parameters()])[0] for layer in layers])
    kept = keep_top(scores, len(layers) - n_drop).tolist()
    parent = next(m for m in model.modules() if any(c is layers for c in m.children()))
    attr = next(name for name, child in parent.named_children() if child is layers)
    setattr(parent, attr, nn.ModuleList([layers[i] for i in kept]))
    for new_idx, layer in enumerate(getattr(parent, attr)):
        if hasattr(layer.self_attn, "layer_idx"):
            layer.self_attn.layer_idx = new_idx
    config = model.config
    if getattr(config, "layer_types", None):
        config.layer_types = [config.layer_types[i] for i in kept]
    config.num_hidden_layers = len(kept)
