"""The validation hold-out of the data modules."""

from __future__ import annotations

import pytest

from tunelab.core.config import ConfigError
from tunelab.data.base import split_off


def test_split_off_holds_out_exactly_size_disjoint_examples_in_order():
    examples = [{"i": i} for i in range(10)]
    rest, held = split_off(examples, 3, seed=0)
    assert len(held) == 3 and len(rest) == 7
    assert sorted(e["i"] for e in rest + held) == list(range(10))
    assert [e["i"] for e in held] == sorted(e["i"] for e in held)
    assert split_off(examples, 3, seed=0) == (rest, held)  # seeded
    assert split_off(examples, 3, seed=1) != (rest, held)


def test_split_off_refuses_to_hold_out_everything():
    with pytest.raises(ConfigError, match=r"data.val_size=4: only 4 training examples"):
        split_off([{}] * 4, 4, seed=0)
