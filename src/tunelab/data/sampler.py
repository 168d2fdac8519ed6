"""The training sampler that can resume mid-epoch (exact resume, see docs/reliability.md)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ResumableSampler(Sampler[int]):
    """A shuffling sampler whose epoch order depends only on (seed, epoch), startable mid-epoch."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.epoch = 0
        self._start: tuple[int, int] | None = None  # (epoch, samples to skip in it)

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch."""
        self.epoch = epoch

    def start_at(self, epoch: int, skip: int) -> None:
        """The next iteration over `epoch` begins after its first `skip` samples."""
        self._start = (epoch, skip)

    def order(self, epoch: int) -> list[int]:
        """The full permutation of an epoch: the one a `DataLoader(shuffle=True,
        generator=Generator().manual_seed(seed))` gives in its `epoch`-th pass, so runs keep the
        data order they had before this sampler existed."""
        generator = torch.Generator().manual_seed(self.seed)
        for _ in range(epoch + 1):
            torch.empty((), dtype=torch.int64).random_(generator=generator)  # the loader's base seed
            order = torch.randperm(self.size, generator=generator)
            torch.randperm(self.size, generator=generator)  # RandomSampler's (empty) remainder draw
        return order.tolist()

    def __iter__(self) -> Iterator[int]:
        order = self.order(self.epoch)
        if self._start is not None and self._start[0] == self.epoch:
            order = order[self._start[1] :]
            self._start = None
        return iter(order)

    def __len__(self) -> int:
        # The full length even when starting mid-epoch: Lightning counts the epoch's batches from
        # its restored batch index, so the epoch still ends after `size` samples in all.
        return self.size
