"""Run a post-training pipeline: every stage an ordinary train.py run, each starting from the last.

    python scripts/pipeline.py post_training [--out results/pipeline/<time>] [-- key=value ...]

`post_training` names conf/pipeline/post_training.yaml (or give a path to a yaml file). Overrides
after `--` are added to every stage (e.g. `-- trainer.max_steps=20`). Writes one run directory per
stage, pipeline.json (status, input and output model of each stage) and table.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TUNELAB_ROOT", str(ROOT))

from tunelab.core.config import ConfigError  # noqa: E402
from tunelab.workflows.pipeline import PipelineError, load_pipeline, run_pipeline, stage_table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    common = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pipeline", help="a conf/pipeline/ name or a yaml path (pipeline=NAME also works)")
    parser.add_argument("--out", type=Path, help="output folder (default results/pipeline/<name>_<time>)")
    parser.add_argument("--model", type=Path, help="the first stage's input model (default: its config's)")
    args = parser.parse_args(argv)
    spec = args.pipeline.removeprefix("pipeline=")
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    out = args.out or ROOT / "results" / "pipeline" / f"{Path(spec).stem}_{stamp}"
    try:
        stages = load_pipeline(spec)
        records = run_pipeline(stages, out, common, args.model)
    except (ConfigError, PipelineError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    table = stage_table(out, records)
    (out / "table.md").write_text(table)
    print(table)
    print(f"wrote {out}/pipeline.json and table.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
