"""SPIN iterations (Chen et al., 2024, arXiv:2401.01335): one train.py run per iteration.

    python scripts/spin.py start=results/rl_sft/export iterations=2 name=spin [override ...]

Iteration t starts from the model of iteration t-1 (`start` for t = 1), which is also its
reference and the model whose answers are the rejected responses; the run is exported to a
merged model directory that iteration t+1 starts from. Every iteration keeps its own run
directory (results/<name>/iter_<t>/: config.yaml, metrics.json, adapter, export/). Other
`key=value` arguments are passed to every run as Hydra overrides. The per-iteration held-out
scores go to results/<name>/spin.json.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tunelab.workflows.export import export_run

ROOT = Path(__file__).resolve().parents[1]
OWN_KEYS = ("start", "iterations", "name")


def parse(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """This script's own `key=value` arguments, and the rest as Hydra overrides."""
    own, overrides = {}, []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key in OWN_KEYS:
            own[key] = value
        else:
            overrides.append(arg)
    if "start" not in own:
        raise SystemExit(__doc__)
    return own, overrides


def iteration_command(model_dir: Path, run_dir: Path, name: str, overrides: list[str]) -> list[str]:
    """The train.py command of one iteration: SPIN from `model_dir` into `run_dir`."""
    return [
        sys.executable,
        str(ROOT / "train.py"),
        "objective=spin",
        f"model.name_or_path={model_dir}",
        f"name={name}",
        f"hydra.run.dir={run_dir}",
        *overrides,
    ]


def scores(run_dir: Path) -> dict:
    """The exact-match numbers of a finished iteration."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {k: v for k, v in metrics.items() if k.endswith("exact_match") or k.startswith("train_loss")}


def main(argv: list[str]) -> int:
    own, overrides = parse(argv)
    name = own.get("name", "spin")
    model_dir = Path(own["start"]).resolve()
    out = ROOT / "results" / name
    summary = []
    for t in range(1, int(own.get("iterations", 2)) + 1):
        run_dir = out / f"iter_{t}"
        print(f"SPIN iteration {t}: from {model_dir} -> {run_dir}", flush=True)
        proc = subprocess.run(iteration_command(model_dir, run_dir, name, overrides), cwd=ROOT)
        if proc.returncode != 0:
            print(f"SPIN iteration {t} failed (exit {proc.returncode}); see {run_dir}", file=sys.stderr)
            return proc.returncode
        model_dir = export_run(run_dir, run_dir / "export")
        summary.append({"iteration": t, "run_dir": str(run_dir), **scores(run_dir)})
        (out / "spin.json").write_text(json.dumps(summary, indent=2) + "\n")
    for row in summary:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
