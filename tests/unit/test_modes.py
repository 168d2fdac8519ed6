"""in_eval_mode: eval inside the block, the previous mode after it, also when the block raises."""

from __future__ import annotations

import pytest
from torch import nn

from tunelab.models.modes import in_eval_mode


@pytest.mark.parametrize("training", [True, False])
def test_the_previous_mode_comes_back_even_after_an_error(training: bool):
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)).train(training)
    with in_eval_mode(model):
        assert not model.training and not model[1].training
    assert model.training is training and model[1].training is training
    with pytest.raises(RuntimeError), in_eval_mode(model):
        raise RuntimeError("evaluation failed")
    assert model.training is training
