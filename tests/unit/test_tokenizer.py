"""The tiny tokenizer: HF loading, round trip, chat template."""

from __future__ import annotations

from transformers import AutoTokenizer


def test_round_trip_and_chat_template(tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = "What is 12+34?\nreverse abc: cba"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text)  # one token per character
    assert tok.decode(ids) == text

    messages = [{"role": "user", "content": "What is 1+2?"}, {"role": "assistant", "content": "3"}]
    rendered = tok.apply_chat_template(messages, tokenize=False)
    assert rendered == "<|user|>What is 1+2?<|end|><|assistant|>3<|end|>"
    ids = tok(rendered, add_special_tokens=False)["input_ids"]
    assert tok.convert_ids_to_tokens(ids[:1]) == ["<|user|>"]
    assert ids[-1] == tok.eos_token_id
    assert tok.decode(ids) == rendered
    prompt = tok.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert prompt == "<|user|>What is 1+2?<|end|><|assistant|>"
