"""The reward registry: built-in rewards, weighted sums, user functions, clear config errors."""

from __future__ import annotations

import sys

import pytest
import torch

from tunelab.core.config import ConfigError
from tunelab.objectives.rewards import REWARDS, RewardSet, register_reward, resolve_reward

PROMPTS = ["What is 1+2?", "What is 10+5?", "What is 3+3?"]
ANSWERS = ["1+2=3", "10+5=15", "3+3=6"]
COMPLETIONS = ["1+2=3", "10+5=16", "six"]


def test_builtin_rewards_by_hand():
    assert resolve_reward("exact_match")(PROMPTS, COMPLETIONS, ANSWERS) == [1.0, 0.0, 0.0]
    assert resolve_reward("format")(PROMPTS, COMPLETIONS, ANSWERS) == [1.0, 1.0, 0.0]
    assert resolve_reward("final_answer")(PROMPTS, ["1+2=3", "5+10=15", "6"], ANSWERS) == [1.0, 1.0, 1.0]


def test_digit_match_gives_partial_credit_by_position():
    completions = ["1+2=3", "10+5=16", "3+3=612", "9"]
    answers = ["1+2=3", "10+5=15", "3+3=6", "4+4=8"]
    # 1/1; "16" vs "15": 1 of 2; "612" vs "6": 1 of 3; "9" vs "8": 0 of 1
    assert resolve_reward("digit_match")(["p"] * 4, completions, answers) == pytest.approx(
        [1.0, 0.5, 1 / 3, 0.0]
    )


def test_char_match_credits_characters_in_place():
    # "13+55=68" vs "13+54=67": 6 of 8 in place; "1+2=3x" vs "1+2=3": 5 of 6
    scores = resolve_reward("char_match")(["p", "p"], ["13+55=68", "1+2=3x"], ["13+54=67", "1+2=3"])
    assert scores == pytest.approx([6 / 8, 5 / 6])


def test_exact_match_reads_the_first_line_like_the_eval():
    assert resolve_reward("exact_match")(["p"], [" 1+2=3 \nmore"], ["1+2=3"]) == [1.0]


def test_weighted_sum_and_per_reward_metrics():
    rewards = RewardSet([{"name": "exact_match", "weight": 1.0}, {"name": "format", "weight": 0.5}])
    total, metrics = rewards(PROMPTS, COMPLETIONS, ANSWERS)
    assert total.tolist() == pytest.approx([1.5, 0.5, 0.0])
    assert metrics["reward/exact_match"].item() == pytest.approx(1 / 3)
    assert metrics["reward/format"].item() == pytest.approx(2 / 3)


def test_extra_keys_are_passed_as_keyword_arguments():
    rewards = RewardSet([{"name": "format", "pattern": "[a-z]+"}])
    assert rewards(PROMPTS, COMPLETIONS, ANSWERS)[0].tolist() == [0.0, 0.0, 1.0]


def test_user_function_as_module_colon_function(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text(
        "def brevity(prompts, completions, answers, limit=4):\n"
        "    return [float(len(c) <= limit) for c in completions]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    rewards = RewardSet([{"name": "my_rewards:brevity", "limit": 5}])
    assert rewards(PROMPTS, COMPLETIONS, ANSWERS)[0].tolist() == [1.0, 0.0, 1.0]
    sys.modules.pop("my_rewards", None)


def test_registering_a_reward_makes_it_available_by_name():
    @register_reward("test_length")
    def length(prompts, completions, answers):
        return [float(len(c)) for c in completions]

    try:
        assert RewardSet(["test_length"])(PROMPTS, COMPLETIONS, ANSWERS)[0].tolist() == [5.0, 7.0, 3.0]
    finally:
        REWARDS.pop("test_length")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "no_such_reward"}, "not registered"),
        ({"name": "no_such_module_xyz:fn"}, "cannot import"),
        ({"name": "math:no_such_fn"}, "cannot import"),
        ({"name": "math:pi"}, "not callable"),
        ({"weight": 1.0}, "'name'"),
    ],
)
def test_bad_reward_config_is_one_config_error(spec, message):
    with pytest.raises(ConfigError, match=message):
        RewardSet([spec])


def test_reward_returning_the_wrong_count_fails_clearly():
    @register_reward("test_short")
    def short(prompts, completions, answers):
        return [1.0]

    try:
        with pytest.raises(ValueError, match="returned 1 values for 3"):
            RewardSet(["test_short"])(PROMPTS, COMPLETIONS, ANSWERS)
    finally:
        REWARDS.pop("test_short")


def test_reward_model_scores_the_chat_like_the_exported_scorer(tmp_path, tiny_model_dir):
    # A reward model directory as objective=reward exports it: a sequence classifier, one label.
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    config = AutoConfig.from_pretrained(tiny_model_dir, num_labels=1)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    config.pad_token_id = tokenizer.pad_token_id
    torch.manual_seed(0)
    scorer = AutoModelForSequenceClassification.from_config(config).eval()
    scorer.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    scores = RewardSet([{"name": "reward_model", "path": str(tmp_path)}])(
        PROMPTS[:2], COMPLETIONS[:2], ANSWERS[:2]
    )
    for i in range(2):  # one unpadded row at a time: the score of its last token
        text = f"<|user|>{PROMPTS[i]}<|end|><|assistant|>{COMPLETIONS[i]}<|end|>"
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            assert scores[0][i].item() == pytest.approx(scorer(**ids).logits[0, 0].item(), abs=1e-5)


def test_reward_model_without_a_directory_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="reward_model"):
        RewardSet([{"name": "reward_model", "path": str(tmp_path / "missing")}])(["p"], ["c"], ["a"])
