"""SFT record formats: each becomes the same chat; every malformed record gives its own message."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from tunelab.core.config import ConfigError
from tunelab.core.constants import IGNORE_INDEX
from tunelab.data.formats import to_messages
from tunelab.data.sft import SFTDataModule
from tunelab.data.sources import DataError, read_records

CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "ok"},
]


@pytest.mark.parametrize(
    "record",
    [
        {"messages": CHAT},
        {"messages": CHAT[1:], "system": "Be brief."},
        {
            "conversations": [
                {"from": "system", "value": "Be brief."},
                {"from": "human", "value": "hi"},
                {"from": "gpt", "value": "ok"},
            ]
        },
        {
            "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "ok"}],
            "system": "Be brief.",
        },
        {"instruction": "hi", "input": "", "output": "ok", "system": "Be brief."},
        {"system_prompt": "Be brief.", "question": "hi", "response": "ok"},
        {"prompt": "hi", "completion": "ok", "system": "Be brief."},
    ],
    ids=["openai", "openai+system", "sharegpt", "sharegpt+system", "alpaca", "orca", "prompt_completion"],
)
def test_every_format_gives_the_same_chat(record):
    assert to_messages(record, "r") == CHAT


def test_alpaca_input_follows_the_instruction_after_a_blank_line():
    record = {"instruction": "Sum these.", "input": "1 2", "output": "3"}
    assert to_messages(record, "r", "alpaca") == [
        {"role": "user", "content": "Sum these.\n\n1 2"},
        {"role": "assistant", "content": "3"},
    ]


def test_orca_without_a_system_prompt_has_no_system_turn():
    messages = to_messages({"system_prompt": "", "question": "q", "response": "a"}, "r")
    assert [m["role"] for m in messages] == ["user", "assistant"]


MALFORMED = [
    ({"text": "x"}, "auto", r":3: unknown record format, expected a field 'messages' \(openai\)"),
    ("not a record", "auto", r":3: expected a JSON object, got str"),  # the reader names the line
    ({"messages": []}, "auto", r":3: field 'messages': expected a non-empty list of turns"),
    ({"messages": ["hi"]}, "auto", r":3: field 'messages\[0\]': expected an object with 'role'"),
    (
        {"messages": [{"role": "bot", "content": "x"}]},
        "auto",
        r":3: field 'messages\[0\]\.role': expected one of \('system', 'user', 'assist.*got 'bot'",
    ),
    (
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": 5}]},
        "auto",
        r":3: field 'messages\[1\]\.content': expected a string, got int",
    ),
    (
        {"messages": [{"role": "user", "content": "q"}]},
        "auto",
        r":3: no assistant turn to learn from",
    ),
    (
        {"conversations": [{"from": "bot", "value": "x"}]},
        "auto",
        r":3: field 'conversations\[0\]\.from': expected one of \('system', 'human', 'user', 'gpt'",
    ),
    (
        {"conversations": [{"from": "human", "value": None}]},
        "auto",
        r":3: field 'conversations\[0\]\.value': expected a string, got NoneType",
    ),
    ({"instruction": "x"}, "auto", r":3: missing field 'output' \(expected a string\)"),
    (
        {"instruction": "x", "input": 3, "output": "y"},
        "auto",
        r":3: field 'input': expected a string, got int",
    ),
    (
        {"question": "q", "response": ["a"]},
        "auto",
        r":3: field 'response': expected a string, got list",
    ),
    ({"prompt": "p"}, "auto", r":3: missing field 'completion'"),
    ({"messages": CHAT}, "alpaca", r":1: missing field 'instruction'"),  # every record is alpaca
    (
        {"prompt": "p", "completion": "c", "system": 1},
        "auto",
        r":3: field 'system': expected a string, got int",
    ),
]


@pytest.mark.parametrize(("bad", "fmt", "message"), MALFORMED)
def test_a_malformed_record_names_file_record_field_and_expectation(tmp_path, bad, fmt, message):
    path = tmp_path / "chats.jsonl"
    good = {"messages": CHAT}
    path.write_text("\n".join(json.dumps(r) for r in (good, good, bad)) + "\n")
    with pytest.raises(DataError, match=rf"chats\.jsonl{message}"):
        SFTDataModule(read_records(str(path)), source=str(path), format=fmt)


def test_an_unknown_format_name_is_refused():
    with pytest.raises(DataError, match=r"data\.format='vicuna': expected 'auto' or one of \['alpaca'"):
        SFTDataModule([{"messages": CHAT}], format="vicuna")


def test_invalid_json_names_the_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"messages": []}\n{"messages": \n')
    with pytest.raises(DataError, match=r"x\.jsonl:2: invalid JSON"):
        read_records(str(path))


@pytest.mark.parametrize("suffix", ["json", "jsonl", "parquet", "csv"])
def test_local_files_of_every_type_read_the_same_records(tmp_path, suffix):
    import datasets

    rows = [
        {"instruction": "a", "input": "", "output": "b"},
        {"instruction": "c", "input": "d", "output": "e"},
    ]
    path = tmp_path / f"data.{suffix}"
    if suffix == "json":
        path.write_text(json.dumps(rows))
    elif suffix == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        getattr(datasets.Dataset.from_list(rows), f"to_{suffix}")(str(path))
    module = SFTDataModule(read_records(str(path)), source=str(path))
    assert [m["messages"][0]["content"] for m in module.records] == ["a", "c\n\nd"]


def test_plain_text_files_read_one_record_per_paragraph(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text("first line\nstill first\n\nsecond\n")
    assert [r["text"].strip() for r in read_records(str(path))] == ["first line\nstill first", "second"]


def orca_ids(tok, messages):
    """The tiny template by hand: <|role|>content<|end|> per turn, one token per character."""
    ids, labels = [], []
    for m in messages:
        turn = tok.convert_tokens_to_ids([f"<|{m['role']}|>", *m["content"], "<|end|>"])
        ids += turn
        # Supervised: an assistant turn's content and its end token (the role token is the prompt).
        labels += [IGNORE_INDEX, *turn[1:]] if m["role"] == "assistant" else [IGNORE_INDEX] * len(turn)
    return ids, labels


def test_orca_system_prompt_and_explanation_trace_pass_through_the_template(tiny_model_dir):
    record = {
        "system_prompt": "Explain step by step.",
        "question": "What is 2+3?",
        "response": "2+3: add 2 and 3. So 5.",
    }
    module = SFTDataModule([record], max_length=256)
    module.attach_tokenizer(AutoTokenizer.from_pretrained(tiny_model_dir))
    example = module.train_examples[0]
    expected_ids, expected_labels = orca_ids(module.tokenizer, to_messages(record, "r"))
    assert example["input_ids"] == expected_ids
    assert example["labels"] == expected_labels
    trace = [t for t, lab in zip(example["input_ids"], example["labels"], strict=True) if lab != IGNORE_INDEX]
    assert module.tokenizer.decode(trace[:-1]) == record["response"]  # the whole trace, then <|end|>


def test_chat_template_override_replaces_the_tokenizers(tiny_model_dir, tmp_path):
    template = tmp_path / "plain.jinja"
    template.write_text(
        "{% for m in messages %}{{ m['role'][0] + ':' + m['content'] + '<|end|>' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ 'a:' }}{% endif %}"
    )
    module = SFTDataModule([{"prompt": "hi", "completion": "ok"}], chat_template=str(template))
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    module.attach_tokenizer(tok)
    example = module.train_examples[0]
    assert tok.convert_ids_to_tokens(example["input_ids"]) == [*"u:hi", "<|end|>", *"a:ok", "<|end|>"]
    supervised = [i for i, lab in enumerate(example["labels"]) if lab != IGNORE_INDEX]
    assert supervised == [7, 8, 9]  # "o", "k", <|end|>: after the generation prompt "a:"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("missing.jinja", r"data\.chat_template='missing\.jinja': no such template file"),
        ("{% for m in messages %}{{ m }}", r"data\.chat_template: line 1: Unexpected end of template"),
    ],
)
def test_a_bad_chat_template_stops_before_the_model_loads(template, message):
    with pytest.raises(ConfigError, match=message):
        SFTDataModule([{"prompt": "a", "completion": "b"}], chat_template=template)


def test_a_template_that_rewrites_earlier_turns_is_refused_for_completion_only(tiny_model_dir):
    # Renders only the last message: a prefix of the chat is not a prefix of its rendering.
    last_only = "{{ messages[-1]['content'] }}{% if add_generation_prompt %}>{% endif %}"
    module = SFTDataModule([{"prompt": "hi", "completion": "ok"}], chat_template=last_only)
    with pytest.raises(DataError, match=r"does not render turns 0\.\.0 .* as a prefix of the whole chat"):
        module.attach_tokenizer(AutoTokenizer.from_pretrained(tiny_model_dir))
