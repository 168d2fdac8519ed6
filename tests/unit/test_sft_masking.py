"""Completion-only labels: exactly the assistant tokens (and their end token) count."""

from __future__ import annotations

from transformers import AutoTokenizer

from tunelab.core.constants import IGNORE_INDEX
from tunelab.data.chat import tokenize_chat
from tunelab.data.collate import pad_batch


def test_only_assistant_turns_are_labelled(tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": "yz"},
    ]
    ids, labels = tokenize_chat(tok, messages, completion_only=True)
    tokens = tok.convert_ids_to_tokens(ids)
    # Built by hand from the template: <|role|>content<|end|> per turn, one token per character.
    assert tokens == [
        "<|system|>", "s", "<|end|>",
        "<|user|>", "h", "i", "<|end|>",
        "<|assistant|>", "o", "k", "<|end|>",
        "<|user|>", "x", "<|end|>",
        "<|assistant|>", "y", "z", "<|end|>",
    ]  # fmt: skip
    supervised = [i for i, label in enumerate(labels) if label != IGNORE_INDEX]
    assert supervised == [8, 9, 10, 15, 16, 17]
    assert all(labels[i] == ids[i] for i in supervised)


def test_full_sequence_labels_without_completion_only(tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    ids, labels = tokenize_chat(tok, messages, completion_only=False)
    assert labels == ids


def test_padding_is_never_supervised():
    batch = pad_batch(
        [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8], "labels": [8]}], pad_id=0
    )
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
