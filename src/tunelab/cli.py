"""`tunelab <verb> [key=value ...]` (also `python -m tunelab`): one entry point for every user verb.

Each verb is a module of `tunelab.apps` with `main(argv) -> int`; all take Hydra-style `key=value`
arguments. The registry below is the list `tunelab --help` prints.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass

from tunelab.apps.hydra_app import hoist_multirun_flag

__all__ = ["VERBS", "hoist_multirun_flag", "main"]


@dataclass(frozen=True)
class Verb:
    module: str  # a module of tunelab.apps with main(argv) -> int
    summary: str


VERBS: dict[str, Verb] = {
    "train": Verb("tunelab.apps.train", "train one experiment, or a sweep with -m (= python train.py)"),
    "eval": Verb("tunelab.apps.eval", "evaluate a base model or a finished run (= python eval.py)"),
    "compare": Verb("tunelab.apps.compare", "tune, confirm over seeds, report (= compare.py)"),
    "table": Verb("tunelab.apps.table", "tables (md, tex, csv) and plots of a results folder"),
    "export": Verb("tunelab.apps.export", "merge a run's adapter into a standalone HF model"),
    "pipeline": Verb("tunelab.apps.pipeline", "run a multi-stage pipeline (conf/pipeline/)"),
    "bench": Verb("tunelab.apps.bench", "tokens/s and memory of training arms vs TRL and a plain loop"),
    "estimate-memory": Verb("tunelab.apps.estimate_memory", "training memory per device, nothing loaded"),
}


def usage() -> str:
    """The verbs and what each does."""
    width = max(map(len, VERBS))
    lines = [f"  {name:{width}s}  {verb.summary}" for name, verb in VERBS.items()]
    head = "usage: tunelab <verb> [key=value ...]   (`tunelab train --help`: the config groups)"
    return "\n".join([head, *lines])


def main(argv: list[str] | None = None) -> int:
    """Dispatch `argv` (without the program name) to its verb; 2 for an unknown verb or a user error."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in VERBS:
        print(f"tunelab: unknown verb {name!r}\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(VERBS[name].module)
    from tunelab.core.config import ConfigError

    try:
        return int(module.main([f"tunelab {name}", *rest]) or 0)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def entry_point() -> None:
    """The `tunelab` console script."""
    sys.exit(main())
