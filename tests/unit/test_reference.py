"""The reference model: adapter-disabled policy (no copy) or frozen copy; never built when unneeded."""

from __future__ import annotations

import math

import pytest
import torch
from peft import LoraConfig, get_peft_model

from tests.unit.pref_helpers import ForbiddenReference
from tunelab.data.preference import PreferenceDataModule
from tunelab.models.load import load_pretrained
from tunelab.objectives.cpo import CPOObjective
from tunelab.objectives.dpo import DPOObjective
from tunelab.objectives.orpo import ORPOObjective
from tunelab.objectives.preference import model_sequence_logps
from tunelab.objectives.reference import build_reference
from tunelab.objectives.reward_model import RewardModelObjective
from tunelab.objectives.simpo import SimPOObjective
from tunelab.training.module import TuneLabModule
from tunelab.world.records import preference_records

REFERENCE_FREE = [SimPOObjective(), ORPOObjective(), CPOObjective(), RewardModelObjective("reward")]


@pytest.fixture
def tiny(tiny_model_dir):
    loaded = load_pretrained(str(tiny_model_dir))
    data = PreferenceDataModule(preference_records("arithmetic", "train", 4), batch_size=4)
    data.attach_tokenizer(loaded.tokenizer)
    return loaded.model, next(iter(data.train_dataloader()))


def perturb(params) -> None:
    with torch.no_grad():
        for p in params:
            p.add_(0.05 * torch.randn_like(p))


def test_adapter_reference_is_the_base_without_a_copy(tiny):
    model, batch = tiny
    with torch.no_grad():
        base_logps, _ = model_sequence_logps(model.eval(), batch)
    policy = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear"))
    reference = build_reference(policy)
    perturb(p for p in policy.parameters() if p.requires_grad)  # a trained adapter
    with torch.no_grad():
        policy_logps, _ = model_sequence_logps(policy, batch)
    ref_logps, _ = reference.sequence_logps(batch)
    assert torch.allclose(ref_logps, base_logps, atol=1e-5)
    assert not torch.allclose(policy_logps, base_logps, atol=1e-3)
    assert list(reference.parameters()) == []  # it holds no weights of its own
    assert reference.forwards == 1


def test_full_fine_tuning_reference_is_a_frozen_copy(tiny):
    model, batch = tiny
    reference = build_reference(model)
    before, _ = reference.sequence_logps(batch)
    perturb(model.parameters())  # the policy trains; the copy must not move
    after, _ = reference.sequence_logps(batch)
    assert torch.equal(before, after)
    assert all(not p.requires_grad for p in reference.parameters())
    assert not set(map(id, reference.parameters())) & set(map(id, model.parameters()))


def optimizer(params):
    return torch.optim.SGD(params, lr=0.0)


@pytest.mark.parametrize("objective", REFERENCE_FREE, ids=lambda o: o.name)
def test_reference_free_objectives_never_build_or_run_one(tiny, objective):
    model, batch = tiny
    objective.prepare_model(model)
    module = TuneLabModule(model, objective, optimizer=optimizer)
    assert module.reference is None
    objective(model, batch, reference=ForbiddenReference())  # raises if the reference is touched


def test_reference_objectives_run_one_reference_forward_per_step(tiny):
    model, batch = tiny
    module = TuneLabModule(model, DPOObjective(), optimizer=optimizer)
    loss = module.objective(module.model, batch, reference=module.reference).loss
    assert module.reference.forwards == 1
    assert math.isclose(loss.item(), math.log(2), rel_tol=1e-5)


def test_precomputed_reference_logps_are_reused_across_batchings(tiny_model_dir):
    loaded = load_pretrained(str(tiny_model_dir))
    data = PreferenceDataModule(preference_records("arithmetic", "train", 6), batch_size=3)
    data.attach_tokenizer(loaded.tokenizer)
    reference = build_reference(loaded.model)
    live = [reference.sequence_logps(b)[0] for b in data.train_dataloader()]
    reference.precompute(data.train_dataloader(), torch.device("cpu"))
    forwards = reference.forwards
    data.batch_size = 2  # different batches of the same rows: every row is a cache hit
    cached = torch.cat([reference.sequence_logps(b)[0] for b in data.train_dataloader()])
    assert reference.forwards == forwards
    assert torch.allclose(torch.sort(cached).values, torch.sort(torch.cat(live)).values, atol=1e-5)
