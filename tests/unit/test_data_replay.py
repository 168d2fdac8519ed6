"""Replay: the realised share of general data in the training stream is the configured fraction."""

from __future__ import annotations

import json

import pytest
from hydra import compose, initialize_config_dir
from transformers import AutoTokenizer

from tests.conftest import ROOT
from tunelab.core.config import ConfigError
from tunelab.core.constants import IGNORE_INDEX
from tunelab.data.base import build_data
from tunelab.data.replay import Replay, replay_count
from tunelab.data.sft import SFTDataModule
from tunelab.data.sources import DataError

TASK = [{"prompt": f"What is {i}+1?", "completion": str(i + 1)} for i in range(300)]
TEXTS = [{"text": f"general text number {i}, about nothing in particular."} for i in range(200)]


def test_replay_count_by_hand():
    # r of all examples: k / (n + k) = r  <=>  k = r n / (1 - r)
    assert replay_count(0.2, 2000) == 500  # 500 / 2500 = 0.2
    assert replay_count(0.25, 300) == 100
    assert replay_count(0.5, 7) == 7
    assert replay_count(0.0, 100) == 0


def is_replay_block(example: dict) -> bool:
    """Text blocks are labelled from their first token; task chats start with an unlabelled prompt."""
    return example["labels"][0] != IGNORE_INDEX


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5])
def test_realised_replay_fraction_of_the_training_stream(tiny_model_dir, fraction):
    module = SFTDataModule(TASK, max_length=32, replay=Replay(fraction, TEXTS), seed=3)
    module.attach_tokenizer(AutoTokenizer.from_pretrained(tiny_model_dir))
    # Counted over one epoch of the shuffled loader: what training actually sees.
    replayed = total = 0
    for batch in module.train_dataloader():
        replayed += int((batch["labels"][:, 0] != IGNORE_INDEX).sum())
        total += len(batch["labels"])
    assert total == len(module.train_examples) == 300 + replay_count(fraction, 300)
    assert replayed == module.report()["train_examples_replay"] == replay_count(fraction, 300)
    assert replayed / total == pytest.approx(fraction, abs=0.002)
    assert sum(map(is_replay_block, module.train_examples)) == replayed


def test_chat_replay_keeps_completion_only_labels(tiny_model_dir):
    chats = [{"messages": [{"role": "user", "content": "Reverse ab"}, {"role": "assistant", "content": "x"}]}]
    module = SFTDataModule(TASK[:30], max_length=64, replay=Replay(0.25, chats * 20))
    module.attach_tokenizer(AutoTokenizer.from_pretrained(tiny_model_dir))
    tok = module.tokenizer
    replayed = [e for e in module.train_examples if "Reverse" in tok.decode(e["input_ids"])]
    assert len(replayed) == 10  # 0.25 * 30 / 0.75
    for example in replayed:
        supervised = [
            t for t, lab in zip(example["input_ids"], example["labels"], strict=True) if lab != IGNORE_INDEX
        ]
        assert tok.convert_ids_to_tokens(supervised) == ["x", "<|end|>"]


def test_a_small_pool_is_cycled(tiny_model_dir):
    pool = [{"text": "abcdefghijklmnopqrstuvwxyz012345"}]  # 33 tokens with eos: two 16-token blocks
    module = SFTDataModule(TASK[:30], max_length=16, replay=Replay(0.5, pool))
    module.attach_tokenizer(AutoTokenizer.from_pretrained(tiny_model_dir))
    blocks = [tuple(e["input_ids"]) for e in module.train_examples if is_replay_block(e)]
    assert len(blocks) == 30 and len(set(blocks)) == 2  # 2 blocks, each used 15 times
    assert blocks.count(blocks[0]) == 15


def test_replay_factory_is_not_called_when_off():
    def explode() -> list[dict]:
        raise AssertionError("replay records built although replay is off")

    assert Replay(0.0, explode).added == 0


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (
            lambda: Replay(1.0, TEXTS),
            ConfigError,
            r"data\.replay\.fraction=1\.0: expected a number in \[0, 1\)",
        ),
        (lambda: Replay(0.2, None), ConfigError, r"needs data\.replay\.records"),
        (
            lambda: Replay(0.2, [*TEXTS, {"text": 3}]),
            DataError,
            r"replay: record 201: field 'text': expected a string",
        ),
        (lambda: Replay(0.2, [{"question": "q"}]), DataError, r"replay: record 1: missing field 'response'"),
    ],
)
def test_bad_replay_settings(make, error, message):
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize("pool", sorted(p.stem for p in (ROOT / "conf" / "data" / "replay").glob("*.yaml")))
def test_every_replay_pool_composes_and_fills_its_share(tiny_model_dir, tmp_path, pool):
    general = tmp_path / "general.jsonl"
    general.write_text("".join(json.dumps({"text": f"some general text {i}" * 3}) + "\n" for i in range(40)))
    overrides = [f"data.replay.records.path={general}"] if pool == "file" else []
    overrides += [
        f"data/replay={pool}",
        "data.replay.fraction=0.2",
        "data.train.size=80",
    ]
    overrides += [] if pool == "file" else ["data.replay.records.size=50"]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    module = build_data(cfg.data)
    module.attach_tokenizer(AutoTokenizer.from_pretrained(tiny_model_dir))
    assert module.report()["train_examples_replay"] == 20  # 0.2 * 80 / 0.8
    assert len(module.train_examples) == 100
