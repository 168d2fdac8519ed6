"""`tunelab pipeline pipeline=NAME [out=DIR] [model=DIR] [overrides=[key=value,...]]`.

Runs a post-training pipeline: every stage an ordinary training run, each starting from the last
one's output model. NAME is a conf/pipeline/ file (or a yaml path); `overrides` are added to every
stage (e.g. `overrides=[trainer.max_steps=20]`). Writes one run directory per stage, pipeline.json
(status, input and output model of each stage) and table.md.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tunelab.apps.arguments import parse_arguments


@dataclass
class PipelineArguments:
    pipeline: str = "???"  # a conf/pipeline/ name or a yaml path
    out: str | None = None  # default results/pipeline/<name>_<time>
    model: str | None = None  # the first stage's input model; default: its config's
    overrides: list[str] = field(default_factory=list)  # added to every stage


def main(argv: list[str]) -> int:
    """Run every stage; 1 when a stage fails (pipeline.json says which)."""
    args = parse_arguments("pipeline", PipelineArguments, argv[1:])
    from tunelab.core.config import ConfigError, project_root
    from tunelab.workflows.pipeline import PipelineError, load_pipeline, run_pipeline, stage_table

    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    default_out = project_root() / "results" / "pipeline" / f"{Path(args.pipeline).stem}_{stamp}"
    out = Path(args.out) if args.out else default_out
    try:
        stages = load_pipeline(args.pipeline)
        model = Path(args.model) if args.model else None
        records = run_pipeline(stages, out, list(args.overrides), model)
    except (ConfigError, PipelineError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    table = stage_table(out, records)
    (out / "table.md").write_text(table)
    print(table)
    print(f"wrote {out}/pipeline.json and table.md")
    return 0
