"""Speed switches: a missing Liger is a config error; compile keeps checkpoint keys."""

from __future__ import annotations

import importlib.util

import pytest
from torch import nn

from tunelab.core.config import ConfigError
from tunelab.scaling.speed import apply_speed, check_speed


@pytest.mark.skipif(importlib.util.find_spec("liger_kernel") is not None, reason="liger-kernel is installed")
def test_liger_without_the_package_is_a_config_error():
    with pytest.raises(ConfigError, match=r"speed\.liger=true needs the liger-kernel package"):
        check_speed(liger=True)


def test_defaults_change_nothing():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert apply_speed(model) is model
    assert model._compiled_call_impl is None


def test_compile_is_in_place_and_keeps_state_dict_keys():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    keys = list(model.state_dict())
    assert apply_speed(model, compile=True) is model
    assert model._compiled_call_impl is not None  # the forward now goes through torch.compile
    assert list(model.state_dict()) == keys  # no `_orig_mod.` prefix: checkpoints load as before
