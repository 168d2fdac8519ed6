"""SFT data: masking boundaries on hand-built chats, and the truncation report."""

from __future__ import annotations

from transformers import AutoTokenizer

from tunelab.core.constants import IGNORE_INDEX
from tunelab.data.sft import SFTDataModule
from tunelab.data.text import TextDataModule


def module_with(tiny_model_dir, records: list[dict], **kw) -> SFTDataModule:
    module = SFTDataModule(records, **kw)
    module.attach_tokenizer(AutoTokenizer.from_pretrained(tiny_model_dir))
    return module


def test_sharegpt_multi_turn_masks_every_assistant_turn(tiny_model_dir):
    record = {
        "system": "S",
        "conversations": [
            {"from": "human", "value": "a"},
            {"from": "gpt", "value": "bc"},
            {"from": "human", "value": "d"},
            {"from": "gpt", "value": "e"},
        ],
    }
    ex = module_with(tiny_model_dir, [record]).train_examples[0]
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    # By hand: <|system|>S<|end|> <|user|>a<|end|> <|assistant|>bc<|end|>
    #          0          1 2     3        4 5     6             7 8 9
    #          <|user|>d<|end|> <|assistant|>e<|end|>
    #          10      11 12    13            14 15
    assert tok.convert_ids_to_tokens(ex["input_ids"])[6:10] == ["<|assistant|>", "b", "c", "<|end|>"]
    assert [i for i, lab in enumerate(ex["labels"]) if lab != IGNORE_INDEX] == [7, 8, 9, 14, 15]


def test_truncation_reports_examples_and_tokens_cut(tiny_model_dir):
    records = [
        {"prompt": "hi", "completion": "okay"},  # <|user|>hi<|end|><|assistant|>okay<|end|>: 10 tokens
        {"prompt": "hello", "completion": "fine thanks"},  # 1+5+1+1+11+1 = 20 tokens
        {"prompt": "abcdefghijkl", "completion": "z"},  # 1+12+1+1+1+1 = 17 tokens
    ]
    module = module_with(tiny_model_dir, records, max_length=10)
    assert [len(e["input_ids"]) for e in module.train_examples] == [10, 10, 10]
    assert (
        module.report().items()
        >= {
            "train_examples": 3,
            "train_examples_truncated": 2,
            "train_tokens_truncated": (20 - 10) + (17 - 10),
        }.items()
    )
    # The cut falls inside the second answer: 8 prompt tokens, so "fine thanks" keeps "fi".
    second = module.train_examples[1]
    assert [lab for lab in second["labels"] if lab != IGNORE_INDEX] == second["input_ids"][8:10]
    assert module.tokenizer.decode(second["input_ids"][8:10]) == "fi"
    # The third loses its whole answer: nothing left to learn from.
    assert all(lab == IGNORE_INDEX for lab in module.train_examples[2]["labels"])


def test_text_blocks_report_the_dropped_tail(tiny_model_dir):
    module = TextDataModule([{"text": "abcdefg"}, {"text": "hij"}], max_length=4)
    module.attach_tokenizer(AutoTokenizer.from_pretrained(tiny_model_dir))
    # Stream: abcdefg<eos>hij<eos> = 12 tokens -> three 4-token blocks, nothing dropped.
    assert len(module.train_examples) == 3 and module.report()["train_tokens_truncated"] == 0
    module = TextDataModule([{"text": "abcdefgh"}], max_length=4)
    module.attach_tokenizer(AutoTokenizer.from_pretrained(tiny_model_dir))
    # abcdefgh<eos> = 9 tokens -> two blocks, the 1-token tail dropped.
    assert len(module.train_examples) == 2 and module.report()["train_tokens_truncated"] == 1
