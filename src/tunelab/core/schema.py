"""The typed schema of the knobs a user sets: each checked for type and range, the key named.

`validate(cfg)` runs on the composed config before anything heavy is imported (it needs only
omegaconf and the standard library), so `rank=-1`, `lr=abc` or `data.batch_size=0` stop the run
with one line instead of failing inside a library after the model loaded. A key a config does not
have is skipped: each group config declares only the knobs it uses.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Callable
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from tunelab.core.config import ConfigError

_ABSENT = object()


@dataclass(frozen=True)
class Knob:
    """One key: its type (`int`, `number`, `bool`, `str`), whether null is allowed, and a range."""

    key: str
    kind: str
    expected: str  # what the message says a valid value is
    ok: Callable[[object], bool] = lambda v: True
    nullable: bool = False


def _is(kind: str, value: object) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):  # True is an int to Python, never a number to a user
        return False
    if kind == "int":
        return isinstance(value, int)
    if kind == "number":
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, str)


def positive_int(key: str, nullable: bool = False) -> Knob:
    return Knob(key, "int", "an integer >= 1", lambda v: v >= 1, nullable)


def count(key: str, nullable: bool = False) -> Knob:
    return Knob(key, "int", "an integer >= 0", lambda v: v >= 0, nullable)


def positive(key: str, nullable: bool = False) -> Knob:
    return Knob(key, "number", "a number > 0", lambda v: v > 0, nullable)


def non_negative(key: str, nullable: bool = False) -> Knob:
    return Knob(key, "number", "a number >= 0", lambda v: v >= 0, nullable)


def probability(key: str, top_open: bool = True) -> Knob:
    if top_open:
        return Knob(key, "number", "a number in [0, 1)", lambda v: 0 <= v < 1)
    return Knob(key, "number", "a number in (0, 1]", lambda v: 0 < v <= 1)


def flag(key: str) -> Knob:
    return Knob(key, "bool", "true or false")


def _signal_name(value: object) -> bool:
    return value in signal.Signals.__members__


KNOBS: list[Knob] = [
    # top-level sweep knobs (conf/train.yaml)
    positive_int("rank"),
    positive("alpha"),
    probability("dropout"),
    positive("lr"),
    Knob("seed", "int", "an integer"),
    positive_int("checkpoint_every"),
    positive("neftune_alpha", nullable=True),
    Knob(
        "name", "str", "a non-empty name without '/' at either end", lambda v: v.strip("/ ") == v and v != ""
    ),
    Knob("resume", "bool", "true, false, 'auto' or a checkpoint path", nullable=True),
    flag("resume_force"),
    flag("gradient_checkpointing"),
    flag("debug"),
    count("guards.zero_token_batch_limit"),
    Knob("guards.max_weight_norm", "number", "a number > 0, or null for no limit", lambda v: v > 0, True),
    Knob("preemption.signal", "str", "a signal name such as SIGUSR1, or null", _signal_name, True),
    count("faults.kill_at_step", nullable=True),
    count("faults.kill_while_saving_at_step", nullable=True),
    # data (every data config)
    positive_int("data.batch_size"),
    positive_int("data.max_length"),
    count("data.val_size"),
    Knob("data.seed", "int", "an integer"),
    flag("data.completion_only"),
    flag("data.packing"),
    Knob("data.num_labels", "int", "an integer >= 2", lambda v: v >= 2),
    positive_int("data.train.limit", nullable=True),
    positive_int("data.train.size"),
    Knob("data.format", "str", "a format name"),
    # trainer
    Knob(
        "trainer.max_steps",
        "int",
        "an integer >= 0 (0: a stage that only loads and saves), or -1 with trainer.max_epochs",
        lambda v: v >= 0 or v == -1,
    ),
    Knob("trainer.max_epochs", "int", "an integer >= 1, or -1", lambda v: v >= 1 or v == -1, True),
    positive_int("trainer.accumulate_grad_batches"),
    non_negative("trainer.gradient_clip_val", nullable=True),
    positive_int("trainer.log_every_n_steps"),
    # optimizer and adapter
    positive("adapter.lr"),
    positive("optimizer.optimizer.lr"),
    non_negative("optimizer.optimizer.weight_decay"),
    count("optimizer.scheduler.num_warmup_steps"),
    # 0 is how OFT/BOFT say "sized by oft_block_size"; `rank` (what LoRA-family r reads) stays >= 1
    count("adapter.peft_config.r"),
    positive("adapter.peft_config.lora_alpha"),
    probability("adapter.peft_config.lora_dropout"),
    positive_int("adapter.rank"),
    positive_int("adapter.active_layers"),
    positive_int("adapter.interval"),
    # objective (each objective config has the keys it uses)
    non_negative("objective.beta"),
    positive("objective.tau"),
    Knob("objective.label_smoothing", "number", "a number in [0, 0.5)", lambda v: 0 <= v < 0.5),
    Knob("objective.group_size", "int", "an integer >= 2 (advantages compare completions)", lambda v: v >= 2),
    positive("objective.epsilon"),
    positive("objective.epsilon_high", nullable=True),
    positive_int("objective.num_iterations"),
    positive_int("objective.generation.max_new_tokens"),
    non_negative("objective.generation.temperature"),
    probability("objective.generation.top_p", top_open=False),
    # evaluation
    positive_int("eval.batch_size"),
]


def _value(cfg: DictConfig, key: str) -> object:
    try:
        return OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False)
    except OmegaConfBaseException as err:  # an interpolation that does not resolve
        raise ConfigError(f"{key}: cannot be resolved ({str(err).splitlines()[0]})") from None


def check(knob: Knob, value: object) -> None:
    """ConfigError naming `knob.key` unless `value` has its type and range."""
    if value is None and knob.nullable:
        return
    if knob.key == "resume" and (isinstance(value, str) and value.strip()):
        return  # 'auto' or a checkpoint path; the path itself is checked when resuming
    if not _is(knob.kind, value) or not knob.ok(value):
        raise ConfigError(f"{knob.key}={value!r}: expected {knob.expected}")


def _missing(tree: object, prefix: str = "") -> list[str]:
    """Keys whose value is `???` (a value the user must give)."""
    if isinstance(tree, dict):
        return [k for key, v in tree.items() for k in _missing(v, f"{prefix}{key}.")]
    if isinstance(tree, list):
        return [k for i, v in enumerate(tree) for k in _missing(v, f"{prefix}{i}.")]
    return [prefix[:-1]] if tree == "???" else []


def validate(cfg: DictConfig) -> None:
    """Check every knob the config has; ConfigError names the first bad key (or missing value)."""
    missing = sorted(
        k for k in _missing(OmegaConf.to_container(cfg, resolve=False)) if not k.startswith("hydra.")
    )
    if missing:
        raise ConfigError(f"{missing[0]}: a value is required (set {missing[0]}=...)")
    for knob in KNOBS:
        value = _value(cfg, knob.key)
        if value is not _ABSENT:
            check(knob, value)
