"""Data-side methods through train.py: a user file with selection, replay and NEFTune; a bad record."""

from __future__ import annotations

import json

import pytest

from tests.conftest import read_metrics, run_train

pytestmark = pytest.mark.slow


def write_jsonl(path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_alpaca_file_with_lima_selection_replay_and_neftune(tmp_path):
    records = [
        {"instruction": f"What is {i}+{i}?", "input": "", "output": f"{i}+{i}={2 * i}"} for i in range(40)
    ]
    records += records[:5]  # 5 exact duplicates for dedup
    records.append({"instruction": "Say a dot.", "input": "", "output": "."})  # removed by min length
    data = tmp_path / "alpaca.jsonl"
    write_jsonl(data, records)
    run_dir = tmp_path / "run"
    run_train(
        [
            "data=jsonl",
            f"data.train.path={data}",
            "data.train.test_size=0",  # all 46 records train: the counts below are of the whole file
            "data/selection=lima",
            "data.selection.length.min_chars=2",
            "data.selection.keep_best.n=30",
            "data.replay.fraction=0.25",
            "data.max_length=24",  # two-digit sums take 26 tokens: cut by 2
            "data.batch_size=8",
            "neftune_alpha=5",
            "trainer.max_steps=3",
            "eval=none",
            "checkpoint_every=100",
            f"hydra.run.dir={run_dir}",
        ]
    )
    m = read_metrics(run_dir)
    assert m["status"] == "completed" and m["train_steps"] == 3
    # 46 records: dedup -5, length -1 (the empty answer), keep_best keeps 30 of 40 -> -10.
    assert (m["data/removed/dedup"], m["data/removed/length"], m["data/removed/keep_best"]) == (5, 1, 10)
    assert m["train_examples_replay"] == 10  # 0.25 * 30 / 0.75
    assert m["train_examples"] == 40
    # <|user|>What is 10+10?<|end|><|assistant|>10+10=20<|end|>: 1+14+1+1+8+1 = 26 tokens for i = 10..29
    # (one-digit i: 21 or 22 tokens, kept whole).
    assert (m["train_examples_truncated"], m["train_tokens_truncated"]) == (20, 40)
    assert "neftune_alpha: 5" in (run_dir / "config.yaml").read_text()


def test_a_malformed_record_stops_the_run_before_the_model_loads(tmp_path):
    data = tmp_path / "chats.jsonl"
    good = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "ok"}]}
    write_jsonl(
        data, [good, good, good, {"conversations": [{"from": "human", "value": "hi"}, {"from": "bot"}]}]
    )
    run_dir = tmp_path / "run"
    args = ["data=jsonl", f"data.train.path={data}", f"hydra.run.dir={run_dir}"]
    proc = run_train(args, check=False, env={"HYDRA_FULL_ERROR": "0"})
    assert proc.returncode == 2  # a user error: one line, exit 2
    message = f"tunelab: DataError: {data}:4: field 'conversations[1].from': expected one of"
    ours = [line for line in proc.stderr.splitlines() if line.startswith("tunelab:")]
    assert len(ours) == 1 and ours[0].startswith(message)
    assert "Traceback" not in proc.stderr
    m = read_metrics(run_dir)
    assert m["status"] == "failed" and m["error"].startswith("DataError: ")
    assert not any(k.startswith("baseline/") for k in m)  # no evaluation: the model never loaded
    assert not (run_dir / "samples.jsonl").exists()

    proc = run_train([*args, "debug=true"], check=False, env={"HYDRA_FULL_ERROR": "0"})
    assert proc.returncode != 0 and "Traceback" in proc.stderr  # debug=true: the traceback too
