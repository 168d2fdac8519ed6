"""Answer matching modes, the held-out split, the stop tokens and the flat-reward signal, by hand."""

from __future__ import annotations

import json

import pytest
import torch

from tunelab.core.config import ConfigError
from tunelab.data.answers import AnswerMatcher, last_number, normalize
from tunelab.data.split import read_split, split_indices
from tunelab.models.stop_tokens import stop_token_ids
from tunelab.objectives.grpo import zero_spread_share
from tunelab.objectives.rewards import answer_reward


def test_normalize_and_last_number():
    assert normalize("  The  Answer: PARIS. ") == "the answer: paris"
    assert last_number("13 + 54 = 67.") == 67.0
    assert last_number("about 1,234.5 units") == 1234.5
    assert last_number("none") is None


@pytest.mark.parametrize(
    ("match", "pattern", "prediction", "reference", "expected"),
    [
        ("exact", None, "Paris.", "paris", True),
        ("exact", None, "13 + 54 = 67.", "67", False),
        ("number", None, "13 + 54 = 67.", "67", True),
        ("number", None, "13 + 54 = 68.", "67", False),
        ("number", None, "no digits", "67", False),
        ("regex", r"#### (.+)", "work... #### 42", "steps #### 42", True),
        ("regex", r"#### (.+)", "work... #### 42", "42", True),  # a bare reference is compared whole
        ("regex", r"#### (.+)", "42", "42", False),  # the reply must carry the marker
        ("contains", None, "The capital is Paris, of course", "paris", True),
        ("contains", None, "Lyon", "paris", False),
    ],
)
def test_matcher_modes(match, pattern, prediction, reference, expected):
    assert AnswerMatcher(match, pattern)(prediction, reference) is expected


def test_matcher_config_errors():
    with pytest.raises(ConfigError, match=r"match='fuzzy'"):
        AnswerMatcher("fuzzy")
    with pytest.raises(ConfigError, match="needs a pattern"):
        AnswerMatcher("regex")


def test_answer_reward_reads_the_reference_per_completion():
    rewards = answer_reward(["p"] * 3, ["It is 7.", "8", "7"], ["7", "7", "7"], match="number")
    assert rewards == [1.0, 0.0, 1.0]


def test_split_is_disjoint_seeded_and_covers_the_file(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"i": i}) + "\n" for i in range(50)))
    train = [r["i"] for r in read_split(str(path), "train", test_size=0.1, seed=3)]
    test = [r["i"] for r in read_split(str(path), "test", test_size=0.1, seed=3)]
    assert len(test) == 5 and len(train) == 45 and sorted(train + test) == list(range(50))
    assert test == [r["i"] for r in read_split(str(path), "test", test_size=5, seed=3)]
    assert test != [r["i"] for r in read_split(str(path), "test", test_size=5, seed=4)]
    limited = read_split(str(path), "train", test_size=0.1, seed=3, limit=10)
    assert [r["i"] for r in limited] == train[:10]  # limit cuts training only, after the split
    other = tmp_path / "t.jsonl"
    other.write_text(json.dumps({"i": 99}) + "\n")
    assert read_split(str(path), "test", test_path=str(other)) == [{"i": 99}]
    assert len(read_split(str(path), "train", test_path=str(other), test_size=0.5)) == 50
    assert split_indices(4, 0, 0) == ([0, 1, 2, 3], [])
    with pytest.raises(ConfigError, match=r"data\.test_size=4: holds out 4 of only 4"):
        split_indices(4, 4, 0)


def test_stop_tokens_include_the_templates_end_of_turn(tiny_model_dir):
    from tunelab.models.load import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model_dir))
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|eot|>"]})
    tokenizer.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}<|eot|>{% endfor %}"
    eot = tokenizer.convert_tokens_to_ids("<|eot|>")
    assert eot != tokenizer.eos_token_id
    model = torch.nn.Linear(1, 1)
    model.generation_config = type("G", (), {"eos_token_id": [7, tokenizer.eos_token_id]})()
    assert stop_token_ids(model, tokenizer) == [7, tokenizer.eos_token_id, eot]


def test_zero_spread_share_counts_groups_with_one_reward():
    rewards = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.5, 0.5, 0.0, 0.0])  # groups of 2: flat, mixed, flat, flat
    assert zero_spread_share(rewards, 2).item() == 0.75


def test_a_bad_record_is_named_by_its_position_in_the_file_after_the_split(tmp_path):
    from tunelab.data.sft import SFTDataModule
    from tunelab.data.sources import DataError

    records = [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(10)]
    records[7] = {"prompt": "q7"}  # no completion
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    train = read_split(str(path), "train", test_size=3, seed=0)
    held = set(range(10)) - set(train.positions)
    assert 7 not in held and min(held) < 7  # records before the bad one were held out
    with pytest.raises(DataError, match=r"d\.jsonl:8: "):  # record 7 (0-based) is the file's line 8
        SFTDataModule(train, source=str(path))
