"""Putting a model in eval mode for a while, and back to the mode it was in."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def in_eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """`model.eval()` inside the block; afterwards the train/eval mode it had before, even on error.

    Evaluation and frozen-reference forwards run inside training: dropout must be off for them and
    back on for the next training step.
    """
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
