"""NEFTune: uniform noise on the input embeddings while training (Jain et al., 2023,
"NEFTune: Noisy Embeddings Improve Instruction Finetuning").

Each embedding vector gets noise drawn from Uniform(−1, 1) scaled by alpha/sqrt(L·d), where d is the
embedding width and L the sequence length: the example's own length (its attention-mask count) when
the forward call passes an attention mask, else the padded width of the batch. No noise in eval mode
or without gradients, so evaluation, generation and the reference model's forward are untouched.
"""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from tunelab.core.config import ConfigError


def neftune_scale(alpha: float, lengths: Tensor, dim: int) -> Tensor:
    """alpha / sqrt(L·d) per row, shaped to broadcast over (rows, positions, dim)."""
    return (alpha / torch.sqrt(lengths.clamp(min=1).to(torch.float32) * dim)).view(-1, 1, 1)


def add_noise(embeds: Tensor, alpha: float, attention_mask: Tensor | None = None) -> Tensor:
    """`embeds` (rows, positions, dim) plus NEFTune noise; L per row from `attention_mask` if given."""
    rows, width, dim = embeds.shape
    if attention_mask is not None and attention_mask.shape == (rows, width):
        lengths = attention_mask.sum(dim=1)
    else:
        lengths = torch.full((rows,), width, device=embeds.device)
    scale = neftune_scale(alpha, lengths.to(embeds.device), dim).to(embeds.dtype)
    return embeds + torch.empty_like(embeds).uniform_(-1.0, 1.0) * scale


class NEFTune(Callback):
    """Adds NEFTune noise to the module's model's input embeddings during `fit` only."""

    def __init__(self, alpha: float) -> None:
        if alpha <= 0:
            raise ConfigError(f"neftune_alpha={alpha}: expected a positive number (or null for no noise)")
        self.alpha = alpha
        self.handles: list[RemovableHandle] = []
        self.mask: Tensor | None = None

    def install(self, model: nn.Module) -> None:
        """Hook `model`: its forward's attention mask is kept for the embedding hook to read."""
        self.handles = [
            model.register_forward_pre_hook(self._keep_mask, with_kwargs=True),
            model.register_forward_hook(self._drop_mask),
            model.get_input_embeddings().register_forward_hook(self._noise),
        ]

    def remove(self) -> None:
        """Take the hooks off (the trained model is then evaluated and saved without them)."""
        for handle in self.handles:
            handle.remove()
        self.handles, self.mask = [], None

    def _keep_mask(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        self.mask = kwargs.get("attention_mask")

    def _drop_mask(self, module: nn.Module, args: tuple, output: object) -> None:
        self.mask = None

    def _noise(self, module: nn.Module, args: tuple, output: Tensor) -> Tensor | None:
        if not (module.training and torch.is_grad_enabled()):
            return None
        return add_noise(output, self.alpha, self.mask)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.install(pl_module.model)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.remove()


def neftune_callbacks(alpha: float | None) -> list[Callback]:
    """`[NEFTune(alpha)]`, or no callback when `neftune_alpha` is null or 0."""
    return [NEFTune(alpha)] if alpha else []
