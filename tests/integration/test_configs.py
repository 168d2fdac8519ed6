"""Every option of every config group composes, and the runnable ones instantiate."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

import tunelab  # noqa: F401  (registers the ${world:} and ${mul:} resolvers)
from tests.conftest import ROOT, compose_with
from tunelab.adapters.base import build_adapter
from tunelab.core.config import ConfigError

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
HUB_MODELS = {"qwen2.5-0.5b", "smollm2-135m", "smollm2-135m-instruct", "llama-3.2-1b", "llama-2-7b"}
NEEDS_PATH = {"jsonl", "preference_jsonl", "unpaired_jsonl", "prompts_jsonl"}
NEEDS_INPUTS = {"xlora": r"adapter\.experts is empty"}  # adapter options built from earlier runs


def options() -> list[tuple[str, str]]:
    return [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]


# What each option must set, written out by hand for the groups whose options are plain values.
PRECISION_STRINGS = {
    "fp32": "32-true",
    "bf16_mixed": "bf16-mixed",
    "bf16_true": "bf16-true",
    "fp16_mixed": "16-mixed",
}
STRATEGY_CLASSES = {
    "single": "auto",
    "ddp": "DDPStrategy",
    "fsdp": "FSDPStrategy",
    "fsdp_grad_op": "FSDPStrategy",
    "fsdp_hybrid": "FSDPStrategy",
    "fsdp_offload": "FSDPStrategy",
    "fsdp2": "ModelParallelStrategy",
    "tensor_parallel": "ModelParallelStrategy",
}
EVAL_TASKS = {
    "default": {"arithmetic", "reverse", "heldout"},
    "lmeval": {"arithmetic", "reverse", "heldout", "lm_eval"},
    "raw": {"arithmetic_raw", "reverse_raw", "reverse"},
    "none": set(),
    "heldout": {"heldout"},
    "facts": {"facts", "reverse", "heldout"},  # memory tuning: recall, the forgetting probe, perplexity
    "reply_nll": {"arithmetic", "reverse", "heldout", "own_replies"},  # teacher-forced; a real model's probe
}
LOGGERS = {
    "csv": {"csv"},
    "tensorboard": {"csv", "tensorboard"},
    "wandb": {"csv", "wandb"},
    "mlflow": {"csv", "mlflow"},
}


def check_plain_option(cfg, group: str, option: str, tmp_path: Path) -> None:
    """The hand-written expectation for the option of a group without constructors of its own."""
    if group == "precision":
        assert cfg.trainer.precision == PRECISION_STRINGS[option]
    elif group == "strategy" and not option.startswith("deepspeed"):  # needs the deepspeed package
        node = cfg.trainer.strategy
        name = node if isinstance(node, str) else type(instantiate(node)).__name__
        assert name == STRATEGY_CLASSES[option]
    elif group == "eval":
        assert set(cfg.eval.tasks) == EVAL_TASKS[option]
    elif group == "logger":  # CSV always, the named logger beside it
        assert set(cfg.logger) == LOGGERS[option]
        # tunelab's CSV logger: Lightning's, keeping earlier rows across a resume
        assert type(instantiate(cfg.logger.csv, save_dir=str(tmp_path))).__name__ == "ResumableCSVLogger"
    elif group == "trainer":
        assert instantiate(cfg.trainer, logger=False, enable_checkpointing=False).max_steps == 600
    elif group == "model" and option not in HUB_MODELS:
        assert (Path(cfg.model.name_or_path) / "config.json").is_file() or option == "tiny_scratch"


@pytest.mark.parametrize(("group", "option"), options())
def test_option_composes_and_instantiates(group: str, option: str, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = compose_with([f"{group}={option}"])
    node = cfg[group] if group not in ("precision", "strategy") else cfg.trainer
    if group == "model" and option in HUB_MODELS:
        assert "/" in node.name_or_path
        return
    if group == "data" and option in NEEDS_PATH:
        return
    if group == "adapter" and option in NEEDS_INPUTS:  # refuses, naming the key, until given them
        with pytest.raises(ConfigError, match=NEEDS_INPUTS[option]):
            build_adapter(node)
        return
    if group in ("adapter", "objective", "data", "prune"):
        assert instantiate(node) is not None
    elif group == "optimizer":
        opt = instantiate(node.optimizer)([torch.nn.Parameter(torch.zeros(2))])
        assert opt.param_groups[0]["lr"] == cfg.lr
    else:
        check_plain_option(cfg, group, option, tmp_path)


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


def test_conf_dir_is_where_the_apps_look():
    from tunelab.core.config import PACKAGE_CONF

    assert PACKAGE_CONF.resolve() == CONF.resolve()


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


@pytest.mark.parametrize("objective", ["grpo", "ppo", "spin"])
def test_online_generation_length_is_the_model_configs(objective: str):
    """`model=smollm2-135m-instruct objective=grpo` samples chat-length replies without extra flags;
    the tiny world keeps its short ones; a model config that declares nothing gets 128."""

    def max_new(*overrides: str) -> int:
        cfg = compose_with([f"objective={objective}", *overrides])
        return instantiate(cfg.objective).generation.max_new_tokens

    for model in ("tiny", "smollm2-135m-instruct", "qwen2.5-0.5b"):
        declared = OmegaConf.load(CONF / "model" / f"{model}.yaml").generation.max_new_tokens
        assert max_new(f"model={model}") == declared
    assert max_new("model=tiny") == 10 and max_new("model=smollm2-135m-instruct") == 128
    assert max_new("~model.generation") == 128
    assert max_new("model=smollm2-135m-instruct", "objective.generation.max_new_tokens=7") == 7


@pytest.mark.parametrize("objective", ["grpo", "ppo"])
def test_online_rewards_are_the_data_configs(objective: str, tmp_path):
    """The toy prompts keep their worked-sum rewards; a user's prompt file is scored against its
    reference answers, matched as its held-out evaluation matches them."""
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "What is 2+2?", "answer": "4"}\n')

    def rewards(*overrides: str) -> list:
        cfg = compose_with([f"objective={objective}", *overrides])
        return [(w.name, w.weight, w.kwargs) for w in instantiate(cfg.objective).rewards.rewards]

    assert [(n, w) for n, w, _ in rewards()] == [("exact_match", 1.0), ("format", 0.1)]
    user = ["data=prompts_jsonl", f"data.train.path={prompts}", "eval.tasks.heldout.match=number"]
    assert rewards(*user) == [("answer", 1.0, {"match": "number", "pattern": None, "normalize": True})]
    assert rewards(*user, "objective.rewards=[{name: format}]")[0][0] == "format"
