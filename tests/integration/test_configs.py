"""Every option of every config group composes, and the runnable ones instantiate."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import tunelab  # noqa: F401  (registers the ${world:} and ${mul:} resolvers)
from tests.conftest import ROOT

CONF = ROOT / "conf"
GROUPS = [
    "model",
    "data",
    "adapter",
    "objective",
    "precision",
    "strategy",
    "optimizer",
    "trainer",
    "eval",
    "logger",
    "prune",
]
HUB_MODELS = {"qwen2.5-0.5b", "smollm2-135m", "smollm2-135m-instruct", "llama-3.2-1b"}  # no network here
NEEDS_PATH = {"jsonl", "preference_jsonl", "unpaired_jsonl", "prompts_jsonl"}


def options() -> list[tuple[str, str]]:
    return [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]


def compose_with(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


@pytest.mark.parametrize(("group", "option"), options())
def test_option_composes_and_instantiates(group: str, option: str):
    cfg = compose_with([f"{group}={option}"])
    node = cfg[group] if group not in ("precision", "strategy") else cfg.trainer
    if group == "model" and option in HUB_MODELS:
        assert "/" in node.name_or_path
        return
    if group == "data" and option in NEEDS_PATH:
        return
    if group in ("adapter", "objective", "data", "prune"):
        assert instantiate(node) is not None
    if group == "optimizer":
        opt = instantiate(node.optimizer)([torch.nn.Parameter(torch.zeros(2))])
        assert opt.param_groups[0]["lr"] == cfg.lr


def test_sweep_knobs_reach_the_adapter():
    cfg = compose_with(["rank=16", "lr=0.01"])
    assert cfg.adapter.peft_config.r == 16 and cfg.adapter.peft_config.lora_alpha == 32
    assert cfg.optimizer.optimizer.lr == 0.01


def test_every_experiment_composes():
    for path in sorted((CONF / "experiment").glob("*.yaml")):
        cfg = compose_with([f"experiment={path.stem}"])
        assert cfg.name


def test_max_steps_override_reaches_the_trainer():
    assert compose_with(["trainer.max_steps=3"]).trainer.max_steps == 3


def test_conf_dir_is_where_train_py_looks():
    assert (Path(ROOT) / "train.py").read_text().count('config_path="conf"') == 1


def test_your_data_selects_the_heldout_eval_and_never_trains_on_it(tmp_path):
    import json

    from tunelab.data.base import build_data
    from tunelab.evaluation.runner import build_eval_tasks

    chats = tmp_path / "chats.jsonl"
    chats.write_text(
        "".join(json.dumps({"prompt": f"q{i}", "completion": f"a{i}"}) + "\n" for i in range(20))
    )
    cfg = compose_with(["data=jsonl", f"data.train.path={chats}", "data.train.test_size=5"])
    assert list(cfg.eval.tasks) == ["heldout"]
    data, tasks = build_data(cfg.data), build_eval_tasks(cfg.eval.tasks)
    trained = {m["messages"][-1]["content"] for m in data.records}
    held = {answer for _, answer in tasks["heldout"].items}
    assert len(trained) == 15 and len(held) == 5 and not trained & held
    assert compose_with(["data=jsonl", f"data.train.path={chats}", "eval=none"]).eval.tasks == {}
    assert "arithmetic" in compose_with([]).eval.tasks  # the tiny world keeps its own tasks
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "".join(json.dumps({"prompt": f"q{i}", "chosen": "y", "rejected": "n"}) + "\n" for i in range(3))
    )
    unpaired = tmp_path / "kto.jsonl"
    unpaired.write_text(
        "".join(json.dumps({"prompt": "q", "completion": "a", "label": b}) + "\n" for b in (True, False))
    )
    kto = compose_with(["objective=kto", "data=unpaired_jsonl", f"data.train.path={unpaired}"])
    assert build_eval_tasks(kto.eval.tasks)["heldout"].items == []  # unpaired records make no pairs
    kto = compose_with(["objective=kto", "data=unpaired_jsonl", f"data.train.path={unpaired}",
                        f"data.train.test_path={pairs}"])  # fmt: skip
    assert len(build_data(kto.data).heldout_records) == 3
