"""Prompt batches for the online objectives: left padding, ground-truth ids, clear data errors."""

from __future__ import annotations

import pytest

from tunelab.core.constants import IGNORE_INDEX
from tunelab.data.prompts import PromptDataModule, collate_prompts
from tunelab.data.sources import DataError
from tunelab.models.load import load_tokenizer
from tunelab.world.records import prompt_records


def test_collate_left_pads_prompts_and_right_pads_answers():
    examples = [
        {"prompt_ids": [4, 5, 6], "target_ids": [7, 2], "prompt_text": "a", "answer": "x"},
        {"prompt_ids": [8], "target_ids": [9, 9, 2], "prompt_text": "b", "answer": "y"},
    ]
    batch = collate_prompts(examples, pad_id=0)
    assert batch["input_ids"].tolist() == [[4, 5, 6], [0, 0, 8]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]
    assert batch["target_ids"].tolist() == [[7, 2, IGNORE_INDEX], [9, 9, 2]]
    assert batch["prompts"] == ["a", "b"] and batch["answers"] == ["x", "y"]


def test_tiny_world_prompts_render_with_the_chat_template(tiny_model_dir):
    tokenizer = load_tokenizer(str(tiny_model_dir))
    data = PromptDataModule(prompt_records("arithmetic", "train", size=4), batch_size=4)
    data.attach_tokenizer(tokenizer)
    batch = next(iter(data.train_dataloader()))
    row = batch["attention_mask"][0].bool()
    prompt = tokenizer.decode(batch["input_ids"][0][row])
    assert prompt == f"<|user|>{batch['prompts'][0]}<|end|><|assistant|>"
    target = batch["target_ids"][0]
    assert tokenizer.decode(target[target != IGNORE_INDEX]) == f"{batch['answers'][0]}<|end|>"


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"prompt": "hi"}, "expected a field 'answer'"),
        ({"answer": "hi"}, "expected a field 'prompt'"),
        ({"prompt": "hi", "answer": 3}, "field 'answer'"),
    ],
)
def test_bad_prompt_record_names_the_record(record, message):
    with pytest.raises(DataError, match=f"train: record 2: .*{message}"):
        PromptDataModule([{"prompt": "ok", "answer": "ok"}, record])


def test_answer_is_optional_only_when_the_config_says_so():
    data = PromptDataModule([{"prompt": "hi"}, {"prompt": "yo", "answer": None}], require_answer=False)
    assert [r["answer"] for r in data.records] == ["", ""]
