"""Preference data: validation errors that name the record and field; completion-only labels."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from tunelab.data.preference import PreferenceDataModule, UnpairedDataModule, collate_unpaired
from tunelab.data.sources import DataError
from tunelab.world.records import preference_records, unpaired_preference_records


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def tokens(tok, ids) -> list[str]:
    return tok.convert_ids_to_tokens([i for i in ids if i != tok.pad_token_id])


def test_pair_rows_share_the_prompt_and_label_only_the_completion(tok):
    data = PreferenceDataModule([{"prompt": "hi", "chosen": "ok", "rejected": "nope"}], batch_size=1)
    data.attach_tokenizer(tok)
    batch = next(iter(data.train_dataloader()))
    assert batch["input_ids"].shape == (2, 10)  # row 0 chosen, row 1 rejected
    prompt = ["<|user|>", "h", "i", "<|end|>", "<|assistant|>"]
    assert tokens(tok, batch["input_ids"][0]) == [*prompt, "o", "k", "<|end|>"]
    assert tokens(tok, batch["input_ids"][1]) == [*prompt, "n", "o", "p", "e", "<|end|>"]
    labelled = [tokens(tok, [i for i in row.tolist() if i != -100]) for row in batch["labels"]]
    assert labelled == [["o", "k", "<|end|>"], ["n", "o", "p", "e", "<|end|>"]]
    assert batch["attention_mask"].sum(-1).tolist() == [8, 10]


def test_strings_and_chat_messages_give_the_same_batch(tok):
    as_text = {"prompt": "hi", "chosen": "ok", "rejected": "no"}
    as_chat = {
        "prompt": [{"role": "user", "content": "hi"}],
        "chosen": [{"role": "assistant", "content": "ok"}],
        "rejected": [{"role": "assistant", "content": "no"}],
    }
    batches = []
    for record in (as_text, as_chat):
        data = PreferenceDataModule([record], batch_size=1)
        data.attach_tokenizer(tok)
        batches.append(next(iter(data.train_dataloader())))
    assert all((batches[0][k] == batches[1][k]).all() for k in batches[0])


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"prompt": "p", "chosen": "c"}, r"my\.jsonl: record 2: missing field 'rejected'"),
        ({"prompt": "p", "chosen": 3, "rejected": "r"}, r"record 2: field 'chosen': expected a string or"),
        (
            {"prompt": [{"role": "bot", "content": "x"}], "chosen": "c", "rejected": "r"},
            r"record 2: field 'prompt'\[0\]: expected \{'role'",
        ),
    ],
)
def test_bad_pair_records_name_source_record_and_field(record, message):
    good = {"prompt": "p", "chosen": "c", "rejected": "r"}
    with pytest.raises(DataError, match=message):
        PreferenceDataModule([good, record], source="my.jsonl")


def test_bad_unpaired_label_is_named():
    with pytest.raises(DataError, match=r"kto\.jsonl: record 1: field 'label': expected true"):
        UnpairedDataModule([{"prompt": "p", "completion": "c", "label": "yes"}], source="kto.jsonl")


def test_bad_heldout_record_is_named():
    with pytest.raises(DataError, match=r"held-out x: record 1: missing field 'chosen'"):
        PreferenceDataModule([], heldout=[{"prompt": "p"}], source="x")


def test_unpaired_batches_pair_each_prompt_with_the_previous_completion_for_kl(tok):
    records = [
        {"prompt": "a", "completion": "x", "label": True},
        {"prompt": "b", "completion": "y", "label": False},
        {"prompt": "c", "chosen": "z", "rejected": "w"},  # a pair becomes two examples
    ]
    data = UnpairedDataModule(records, batch_size=4)
    data.attach_tokenizer(tok)
    assert [r["label"] for r in data.records] == [True, False, True, False]
    data.train_examples.sort(key=lambda e: (e["prompt"], e["completion"]))  # order for the check
    batch = next(iter(data.loader(data.train_examples, collate_unpaired, shuffle=False)))
    text = ["".join(tokens(tok, row.tolist())[1:]) for row in batch["input_ids"]]  # drop <|user|>
    assert text[:4] == ["a<|end|><|assistant|>x<|end|>", "b<|end|><|assistant|>y<|end|>",
                        "c<|end|><|assistant|>w<|end|>", "c<|end|><|assistant|>z<|end|>"]  # fmt: skip
    # KL rows: prompt i with completion i-1 (wrapping), which no example pairs them with.
    assert text[4:] == ["a<|end|><|assistant|>z<|end|>", "b<|end|><|assistant|>x<|end|>",
                        "c<|end|><|assistant|>y<|end|>", "c<|end|><|assistant|>w<|end|>"]  # fmt: skip
    assert batch["desirable"].tolist() == [True, False, False, True]


def test_tiny_world_pairs_are_near_misses_from_fixed_splits():
    pairs = preference_records("arithmetic", "test", 50)
    assert pairs == preference_records("arithmetic", "test", 50)  # deterministic
    for p in pairs:
        a, b = (int(x) for x in p["prompt"].removeprefix("What is ").removesuffix("?").split("+"))
        shown = p["chosen"].removesuffix(str(a + b))  # "a+b=" where the task shows its work
        assert p["chosen"] == f"{shown}{a + b}" and p["rejected"] != p["chosen"]
        assert p["rejected"].startswith(shown) and p["rejected"].removeprefix(shown).isdigit()
    train_prompts = {p["prompt"] for p in preference_records("arithmetic", "train")}
    assert not train_prompts & {p["prompt"] for p in pairs}
    unpaired = unpaired_preference_records("arithmetic", "train", 10)
    assert sum(r["label"] for r in unpaired) == 5


def test_tiny_world_reversal_pairs_reject_the_unreversed_copy():
    for p in preference_records("reverse", "test", 50):
        word = p["prompt"].removeprefix("Reverse ")
        assert p["chosen"] == word[::-1]
        assert p["rejected"] == word or word == word[::-1]  # palindromes get a letter swap instead
        assert p["rejected"] != p["chosen"] or len(set(word)) == 1


def test_implicit_prompt_pairs_take_the_shared_turns_as_prompt(tok):
    user = {"role": "user", "content": "hi"}
    implicit = {
        "chosen": [user, {"role": "assistant", "content": "ok"}],
        "rejected": [user, {"role": "assistant", "content": "no"}],
    }
    explicit = {"prompt": "hi", "chosen": "ok", "rejected": "no"}
    batches = []
    for record in (implicit, explicit):
        data = PreferenceDataModule([record], batch_size=1)
        data.attach_tokenizer(tok)
        batches.append(next(iter(data.train_dataloader())))
    assert all((batches[0][k] == batches[1][k]).all() for k in batches[0])
