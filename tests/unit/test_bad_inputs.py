"""Bad data files and records: each refused with one line naming file, 1-based line, field and
expectation; valid but unusual files (CRLF, BOM, blank lines, extra keys, .gz) still load."""

from __future__ import annotations

import gzip
import json

import pytest
from transformers import AutoTokenizer

from tunelab.data.preference import PreferenceDataModule, UnpairedDataModule
from tunelab.data.prompts import PromptDataModule
from tunelab.data.sft import SFTDataModule
from tunelab.data.sources import DataError, read_records

CHAT = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]}
PAIR = {"prompt": "p", "chosen": "yes", "rejected": "no"}


def lines(*records: object) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.jsonl", b"", r"empty\.jsonl: no records \(expected at least one\)"),
        ("blank.jsonl", b"\n  \n\n", r"blank\.jsonl: no records"),
        ("empty.json", b"[]", r"empty\.json: no records"),
        (
            "latin1.jsonl",
            lines(CHAT).encode() + '{"a": "caf\xe9"}\n'.encode("latin-1"),
            r"latin1\.jsonl:2: not UTF-8",
        ),
        (
            "packed.jsonl",
            gzip.compress(lines(CHAT).encode(), mtime=0),  # fixed bytes: the same test id on every worker
            r"packed\.jsonl: the file is gzip-compressed.*\.gz",
        ),
        ("zipped.json", b"PK\x03\x04rest", r"zipped\.json: the file is a zip archive"),
        ("nul.jsonl", lines(CHAT).encode() + b"\x00\x00\n", r"nul\.jsonl:2: a NUL byte"),
        ("list.jsonl", b'[\n {"a": 1}\n]\n', r"list\.jsonl:1: invalid JSON .*name it \.json"),
        ("lines.json", lines(CHAT, CHAT).encode(), r"lines\.json:2: invalid JSON \(Extra data\).*\.jsonl"),
        (
            "object.json",
            b'{"data": []}',
            r"object\.json: expected a JSON list of records, got dict with fields",
        ),
        ("number.jsonl", lines(CHAT).encode() + b"7\n", r"number\.jsonl:2: expected a JSON object, got int"),
        ("bad.csv", b"\x1f\x8b\x08rest", r"bad\.csv: the file is gzip-compressed"),
        ("broken.parquet", b"not parquet at all", r"broken\.parquet: cannot read it as a parquet file"),
    ],
)
def test_an_unreadable_file_is_one_data_error_naming_it(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_records(str(path))


def test_a_directory_and_a_missing_file_are_data_errors(tmp_path):
    (tmp_path / "d.jsonl").mkdir()
    with pytest.raises(DataError, match=r"d\.jsonl: is a directory; expected a \.jsonl file"):
        read_records(str(tmp_path / "d.jsonl"))
    with pytest.raises(DataError, match=r"gone\.json: data file not found"):
        read_records(str(tmp_path / "gone.json"))


def test_unusual_but_valid_files_load(tmp_path):
    extra = {**CHAT, "id": 7, "meta": {"source": "pipeline"}}  # keys a user's pipeline added
    crlf_bom = tmp_path / "win.jsonl"
    crlf_bom.write_bytes(b"\xef\xbb\xbf" + lines(CHAT, extra).replace("\n", "\r\n").encode() + b"\r\n\r\n")
    gz = tmp_path / "chats.jsonl.gz"
    gz.write_bytes(gzip.compress(lines(CHAT, extra).encode()))
    listed = tmp_path / "list.json"
    listed.write_bytes(
        b"\xef\xbb\xbf[\r\n" + b",\r\n".join(json.dumps(r).encode() for r in (CHAT, extra)) + b"\r\n]"
    )
    for path in (crlf_bom, gz, listed):
        records = read_records(str(path))
        assert records == [CHAT, extra]
        assert SFTDataModule(records, source=str(path)).records == [CHAT, CHAT]


def test_places_count_lines_from_one_as_an_editor_does(tmp_path):
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text("\n" + lines(CHAT) + "\n" + lines(CHAT))  # records on lines 2 and 4
    assert read_records(str(jsonl)).places == [f"{jsonl}:2", f"{jsonl}:4"]
    listed = tmp_path / "a.json"
    listed.write_text('[{"a": 1},\n\n  {"b": [\n1]}, {"c": 3}]')
    assert read_records(str(listed)).places == [f"{listed}:1", f"{listed}:3", f"{listed}:4"]
    csv = tmp_path / "a.csv"
    csv.write_text("prompt,completion\nhi,ok\nhey,yo\n")
    assert read_records(str(csv)).places == [f"{csv}:2", f"{csv}:3"]


def sft_file(tmp_path, bad: dict) -> str:
    path = tmp_path / "chats.jsonl"
    path.write_text(lines(CHAT, CHAT, bad))
    return str(path)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"prompt": "q", "completion": "  "}, r":3: field 'completion': blank answer"),
        ({"instruction": "q", "output": ""}, r":3: field 'output': blank answer"),
        (
            {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "\n"}]},
            r":3: field 'messages\[1\]': blank assistant answer",
        ),
        (
            {"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]},
            r":3: field 'messages\[0\]': role 'assistant' out of order \(expected a 'user' turn",
        ),
        (
            {"messages": [{"role": "user", "content": "q"}, {"role": "user", "content": "q"}]},
            r":3: field 'messages\[1\]': role 'user' out of order \(expected a 'assistant' turn",
        ),
        (
            {
                "conversations": [
                    {"from": "human", "value": "q"},
                    {"from": "system", "value": "s"},
                    {"from": "gpt", "value": "a"},
                ]
            },
            r":3: field 'conversations\[1\]': role 'system' out of order \(expected 'system' only",
        ),
    ],
)
def test_a_degenerate_or_disordered_chat_is_refused_with_file_line_and_field(tmp_path, bad, message):
    path = sft_file(tmp_path, bad)
    with pytest.raises(DataError, match=rf"chats\.jsonl{message}"):
        SFTDataModule(read_records(path), source=path)


@pytest.mark.parametrize(
    ("bad", "module", "message"),
    [
        (
            {"prompt": "p", "chosen": "same", "rejected": "same"},
            PreferenceDataModule,
            r"fields 'chosen' and 'rejected' are equal",
        ),
        ({"prompt": "p", "chosen": " ", "rejected": "no"}, PreferenceDataModule, r"field 'chosen': blank"),
        ({"prompt": "p", "completion": "", "label": True}, UnpairedDataModule, r"field 'completion': blank"),
        ({"prompt": "p", "answer": " "}, PromptDataModule, r"field 'answer': blank"),
        ({"prompt": "", "answer": "4"}, PromptDataModule, r"field 'prompt': blank"),
    ],
)
def test_a_degenerate_pair_or_prompt_is_refused(tmp_path, bad, module, message):
    good = {**PAIR, "answer": "4", "completion": "c", "label": False}
    path = tmp_path / "d.jsonl"
    path.write_text(lines(good, bad))
    with pytest.raises(DataError, match=rf"d\.jsonl:2: {message}"):
        module(read_records(str(path)), source=str(path))


def test_no_records_after_selection_or_at_all_is_refused():
    with pytest.raises(DataError, match=r"^mine: no training records"):
        SFTDataModule([], source="mine")
    from tunelab.data.selection import LengthFilter

    with pytest.raises(DataError, match=r"data\.selection removed all 2 records \(\{'length': 2\}\)"):
        SFTDataModule([CHAT, CHAT], selection={"length": LengthFilter(min_chars=10)})


@pytest.fixture(scope="session")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_examples_all_cut_away_by_max_length_are_refused(tokenizer):
    long_prompt = {"prompt": "What is " + "1+" * 40 + "1?", "completion": "41"}
    data = SFTDataModule([long_prompt, long_prompt], source="long", max_length=8)
    turn = [{"role": "user", "content": long_prompt["prompt"]}]
    text = tokenizer.apply_chat_template(turn, tokenize=False, add_generation_prompt=True)
    assert len(tokenizer(text, add_special_tokens=False)["input_ids"]) > 8  # the cut leaves prompt only
    with pytest.raises(
        DataError, match=r"^long: all 2 training examples lose every supervised token to data\.max_length=8"
    ):
        data.attach_tokenizer(tokenizer)


def test_some_examples_cut_away_are_counted_and_the_run_goes_on(tokenizer):
    long_prompt = {"prompt": "What is " + "1+" * 40 + "1?", "completion": "41"}
    short = {"prompt": "hi", "completion": "ok"}
    data = SFTDataModule([long_prompt, short, short], source="mixed", max_length=16)
    data.attach_tokenizer(tokenizer)
    assert data.report()["train_examples_unlearnable"] == 1


def test_pairs_whose_sides_agree_within_max_length_are_unlearnable(tokenizer):
    pair = {"prompt": "hi", "chosen": "the same start then yes", "rejected": "the same start then no"}
    data = PreferenceDataModule([pair], source="pairs", max_length=12)
    with pytest.raises(DataError, match=r"^pairs: all 1 training examples lose every supervised token"):
        data.attach_tokenizer(tokenizer)
    data = PreferenceDataModule([pair], source="pairs", max_length=64)
    data.attach_tokenizer(tokenizer)
    assert data.report()["train_examples_unlearnable"] == 0
