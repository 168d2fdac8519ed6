"""The pieces of exact resume, on small inputs checked by hand."""

from __future__ import annotations

import collections
import random
import re

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from tunelab.training.callbacks import resume
from tunelab.training.callbacks.resume import (
    AtomicCheckpointIO,
    ResumableSampler,
    previous_config_diff,
    rng_states,
    set_rng_states,
)


def test_sampler_epoch_order_depends_only_on_seed_and_epoch():
    a, b = ResumableSampler(10, seed=3), ResumableSampler(10, seed=3)
    b.set_epoch(1)
    list(b)  # iterating another epoch first changes nothing for epoch 0
    b.set_epoch(0)
    assert list(a) == list(b)
    assert sorted(a) == list(range(10))
    a.set_epoch(1)
    assert list(a) != list(b) and sorted(a) == list(range(10))


def test_sampler_order_is_the_shuffling_dataloaders_epoch_after_epoch():
    # the independent reference: torch's own shuffling DataLoader with the same seeded generator
    loader = DataLoader(
        list(range(13)), batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(7)
    )
    sampler = ResumableSampler(13, seed=7)
    for epoch in range(4):
        expected = [i for batch in loader for i in batch.tolist()]
        sampler.set_epoch(epoch)
        assert list(sampler) == expected


def test_sampler_starts_mid_epoch_once():
    sampler = ResumableSampler(10, seed=0)
    full = sampler.order(2)
    sampler.start_at(epoch=2, skip=6)
    sampler.set_epoch(2)
    assert list(sampler) == full[6:]
    assert list(sampler) == full  # the next pass over the epoch is whole again
    assert len(sampler) == 10


def test_sampler_skip_waits_for_its_epoch():
    sampler = ResumableSampler(8, seed=0)
    sampler.start_at(epoch=1, skip=3)
    assert list(sampler) == sampler.order(0)  # still epoch 0
    sampler.set_epoch(1)
    assert list(sampler) == sampler.order(1)[3:]


def test_rng_states_round_trip():
    states = rng_states()
    first = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_states(states)
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1]) and first[2] == again[2]


def test_rng_states_load_with_weights_only(tmp_path):
    torch.save({"rng": rng_states()}, tmp_path / "s.pt")
    loaded = torch.load(tmp_path / "s.pt", weights_only=True)["rng"]
    set_rng_states(loaded)
    x = torch.rand(2)
    set_rng_states(loaded)
    assert torch.equal(torch.rand(2), x)


def test_config_diff_names_changed_added_and_removed_leaves():
    old = {"rank": 8, "adapter": {"rank": 8, "name": "lora"}, "eval": {"limit": 1}, "gone": 1}
    new = {"rank": 16, "adapter": {"rank": 16, "name": "lora"}, "eval": {"limit": 2}, "added": 2}
    assert previous_config_diff(old, new, ignored={"eval"}) == [
        "adapter.rank: 8 -> 16",
        "added: '<absent>' -> 2",
        "gone: 1 -> '<absent>'",
        "rank: 8 -> 16",
    ]


def test_atomic_checkpoint_replaces_whole_and_leaves_no_temporary(tmp_path):
    io, path = AtomicCheckpointIO(), tmp_path / "ck" / "last.ckpt"
    io.save_checkpoint({"global_step": 1}, path)
    io.save_checkpoint({"global_step": 2}, path)
    assert torch.load(path, weights_only=True) == {"global_step": 2}
    assert torch.load(path.with_name("last.ckpt.prev"), weights_only=True) == {"global_step": 1}
    names = sorted(p.name for p in path.parent.iterdir())  # each with its digest; no .tmp
    assert names == ["last.ckpt", "last.ckpt.prev", "last.ckpt.prev.sha256", "last.ckpt.sha256"]


def test_a_failed_checkpoint_write_names_the_file_and_the_free_space_and_keeps_the_previous(
    tmp_path, monkeypatch
):
    io, path = AtomicCheckpointIO(), tmp_path / "ck" / "last.ckpt"
    io.save_checkpoint({"global_step": 1}, path)

    def full_disk(obj, fh):  # what torch.save raises when the disk fills mid-write
        fh.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 6514 vs 6513")

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(resume.torch, "save", full_disk)
    monkeypatch.setattr(resume.shutil, "disk_usage", lambda p: usage(10 * 2**30, 10 * 2**30, 706 * 2**20))
    expected = f"{path}: writing the checkpoint failed (706 MiB free on its disk): [enforce fail"
    with pytest.raises(resume.CheckpointWriteError, match="^" + re.escape(expected)):
        io.save_checkpoint({"global_step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"global_step": 1}  # the previous checkpoint, whole
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt", "last.ckpt.sha256"]
