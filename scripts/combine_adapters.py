"""Compare task adapters alone, merged, and switched per task, on every task.

    python scripts/combine_adapters.py arithmetic=<run dir> reverse=<run dir> repeat=<run dir> \
        [--combination cat,linear] [--weights 1,1,1] [--limit 200] [--out DIR] \
        [--arrow TOP_K] [--xlora XLORA_RUN_DIR] [--multitask MULTITASK_RUN_DIR] [--moa base|ADAPTER]

Each NAME=RUN_DIR is a finished LoRA run trained on the tiny-world task NAME (e.g.
`python train.py data.train.task=reverse`); all must share one base model. Writes results.json
and table.md to --out (default results/multi_adapter).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TUNELAB_ROOT", str(ROOT))

from hydra.utils import instantiate  # noqa: E402
from peft import PeftModel  # noqa: E402

from tunelab.adapters.base import build_adapter  # noqa: E402
from tunelab.core.config import ConfigError  # noqa: E402
from tunelab.core.job import run_config  # noqa: E402
from tunelab.workflows.moa import moa_scores  # noqa: E402
from tunelab.workflows.multi_adapter import (  # noqa: E402
    add_rows,
    arrow_model,
    compare,
    load_adapters,
    to_markdown,
    write_results,
)
from tunelab.world import tasks  # noqa: E402


def adapter_dirs(pairs: list[str]) -> tuple[dict[str, Path], object]:
    """`{task: adapter dir}` from NAME=RUN_DIR pairs, and the shared model config."""
    adapters, models = {}, {}
    for pair in pairs:
        name, sep, run_dir = pair.partition("=")
        if not sep or name not in tasks.task_names():
            raise ConfigError(f"{pair!r}: expected TASK=RUN_DIR with TASK one of {tasks.task_names()}")
        metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
        if metrics.get("status") != "completed" or metrics.get("artifact") != "adapter":
            raise ConfigError(f"{run_dir}: not a completed run with a peft adapter/ artifact")
        cfg = run_config(Path(run_dir))
        adapters[name], models[name] = Path(run_dir) / "adapter", cfg.model
    paths = {str(m.name_or_path) for m in models.values()}
    if len(paths) != 1:
        raise ConfigError(f"the runs were trained on different bases: {sorted(paths)}")
    return adapters, next(iter(models.values()))


def extra_models(args: argparse.Namespace, adapters: dict[str, Path], model_cfg) -> dict:
    """The routed/multi-task rows asked for, each on a fresh copy of the base."""
    models = {}
    if args.arrow:
        models[f"arrow (top-{args.arrow})"] = arrow_model(instantiate(model_cfg).model, adapters, args.arrow)
    if args.xlora:
        cfg = run_config(args.xlora)
        adapter = build_adapter(cfg.adapter)
        models["x-lora (learned gate)"] = adapter.load(instantiate(model_cfg).model, args.xlora / "adapter")
    if args.multitask:
        base = instantiate(model_cfg).model
        models["multi-task LoRA"] = PeftModel.from_pretrained(base, args.multitask / "adapter")
    return models


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="TASK=RUN_DIR, one per task adapter")
    parser.add_argument("--combination", default="cat", help="peft combination types, comma-separated")
    parser.add_argument("--weights", help="one merge weight per adapter (default 1 each)")
    parser.add_argument("--limit", type=int, default=200, help="held-out items per task")
    parser.add_argument("--arrow", type=int, metavar="TOP_K", help="add Arrow routing over the adapters")
    parser.add_argument("--xlora", type=Path, metavar="RUN_DIR", help="add a finished adapter=xlora run")
    parser.add_argument("--multitask", type=Path, metavar="RUN_DIR", help="add a multi-task LoRA run")
    parser.add_argument(
        "--moa",
        metavar="AGGREGATOR",
        help="add a mixture-of-agents row: every adapter proposes, "
        "AGGREGATOR (an adapter name, or 'base') picks the answer it finds most likely",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "multi_adapter")
    args = parser.parse_args(argv)
    try:
        adapters, model_cfg = adapter_dirs(args.runs)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    loaded = instantiate(model_cfg)
    model = load_adapters(loaded.model, adapters)
    weights = [float(w) for w in args.weights.split(",")] if args.weights else None
    names = list(adapters)
    results = compare(model, loaded.tokenizer, names, args.combination.split(","), weights, args.limit)
    add_rows(results, extra_models(args, adapters, model_cfg), loaded.tokenizer, names, args.limit)
    if args.moa:
        aggregator = None if args.moa == "base" else args.moa
        moa, ceiling = moa_scores(model, loaded.tokenizer, names, names, aggregator, args.limit)
        results[f"MoA ({len(names)} proposers -> {args.moa})"] = moa
        results["any proposer right (MoA ceiling)"] = ceiling
    meta = {"adapters": {k: str(v) for k, v in adapters.items()}, "weights": weights or [1.0] * len(names)}
    write_results(args.out, results, names, meta)
    print(to_markdown(results, names))
    print(f"wrote {args.out}/results.json and table.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
