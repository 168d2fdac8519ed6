"""One loading path for hub ids and local directories, exercised on local directories."""

from __future__ import annotations

import pytest
import torch

from tunelab.core.config import ConfigError
from tunelab.models.load import init_from_config, load_pretrained


def test_local_directory_round_trip(tmp_path, tiny_model_dir):
    original = load_pretrained(str(tiny_model_dir))
    original.model.save_pretrained(tmp_path / "copy")
    original.tokenizer.save_pretrained(tmp_path / "copy")
    copy = load_pretrained(str(tmp_path / "copy"))
    ids = torch.tensor([[4, 30, 31, 2]])
    with torch.no_grad():
        assert torch.equal(original.model(input_ids=ids).logits, copy.model(input_ids=ids).logits)
    assert copy.tokenizer.pad_token_id is not None
    assert copy.tokenizer.chat_template == original.tokenizer.chat_template


def test_init_from_config_is_seeded_and_random(tiny_model_dir):
    a = init_from_config(str(tiny_model_dir), seed=1).model
    b = init_from_config(str(tiny_model_dir), seed=1).model
    c = load_pretrained(str(tiny_model_dir)).model
    wa, wb, wc = (m.model.layers[0].mlp.up_proj.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_missing_local_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"expected a directory with config\.json"):
        load_pretrained(str(tmp_path / "nope"))


def test_bad_dtype_names_the_key(tiny_model_dir):
    with pytest.raises(ConfigError, match=r"model\.dtype='float33'"):
        load_pretrained(str(tiny_model_dir), dtype="float33")
