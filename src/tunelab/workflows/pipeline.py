"""The post-training stack as one command: stages (cpt -> sft -> dpo -> ...) run one after another.

A pipeline config (`conf/pipeline/<name>.yaml`) lists stages, each a name and a list of ordinary
`train.py` overrides, so any objective, adapter or pruning method is a stage. Every stage runs
`train.py` in a subprocess (its own process: no state leaks between stages) into an ordinary run
directory `<out>/<i>_<name>/`, starting from the previous stage's output model:

- the stage's `output_model` when its metrics.json names one (a pruning stage's `pruned/`), or
- its trained artifact exported to a standalone HF directory (`<run>/export`, adapters merged).

A failed stage stops the pipeline with a `PipelineError` naming it; earlier stages' run
directories and exports stay. `pipeline.json` records every stage's status, run dir and input
model, and `table.md` compares every stage's eval (`tunelab.results.table`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from tunelab.adapters.base import ExportError
from tunelab.core.config import PACKAGE_CONF, ConfigError
from tunelab.results.collect import Row, Run
from tunelab.results.table import build_table, to_markdown
from tunelab.workflows.export import export_run

EXCEPTION_LINE = re.compile(r"^[\w.]*(Error|Exception|Interrupt)\b[^ ]*: ")


class PipelineError(RuntimeError):
    """A stage failed; the message names it and where the earlier stages' outputs are."""


@dataclass
class Stage:
    """One stage: a name and the train.py overrides that define it."""

    name: str
    overrides: list[str] = field(default_factory=list)


def load_pipeline(spec: str | Path, conf_dir: Path | None = None) -> list[Stage]:
    """Stages from `conf/pipeline/<spec>.yaml`, or from the yaml file `spec` names."""
    path = Path(spec)
    if not path.suffix:
        path = (conf_dir or PACKAGE_CONF / "pipeline") / f"{spec}.yaml"
    if not path.is_file():
        raise ConfigError(f"pipeline={spec!r}: no file {path}")
    cfg = OmegaConf.to_container(OmegaConf.load(path))
    stages = cfg.get("stages") if isinstance(cfg, dict) else None
    if not isinstance(stages, list) or not stages:
        raise ConfigError(f"{path}: expected a non-empty list under 'stages'")
    out = []
    for i, s in enumerate(stages):
        if not isinstance(s, dict) or not isinstance(s.get("name"), str):
            raise ConfigError(f"{path}: stages[{i}]: expected {{name: str, overrides: [key=value, ...]}}")
        overrides = s.get("overrides") or []
        if not all(isinstance(o, str) for o in overrides):
            raise ConfigError(f"{path}: stages[{i}] ({s['name']}): overrides must be strings key=value")
        out.append(Stage(s["name"], list(overrides)))
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: stage names must be unique, got {names}")
    return out


def stage_command(stage: Stage, run_dir: Path, model_in: Path | None, common: list[str]) -> list[str]:
    """The train.py command of a stage: its overrides, then the shared ones (they win), its run dir
    and input model."""
    args = [*stage.overrides, *common, f"hydra.run.dir={run_dir}", f"name={run_dir.parent.name}"]
    if model_in is not None:
        args.append(f"model.name_or_path={model_in}")
    # `python -m tunelab train`: works from any directory, with or without a source checkout.
    return [sys.executable, "-m", "tunelab", "train", *args]


def stage_output(run_dir: Path) -> Path:
    """The model the next stage starts from: the stage's `output_model`, or its merged export."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    if metrics.get("output_model"):
        return run_dir / metrics["output_model"]
    return export_run(run_dir)


def last_error(run_dir: Path, stderr: str) -> str:
    """The failed stage's error: metrics.json's `error`, else the last line of its stderr."""
    metrics_path = run_dir / "metrics.json"
    if metrics_path.is_file():
        error = json.loads(metrics_path.read_text()).get("error")
        if error:
            return error
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    # The exception line ("hydra.errors.MissingConfigException: ..."); Hydra prints the config
    # search path after it, so the last line alone is not the error.
    errors = [line for line in lines if EXCEPTION_LINE.match(line)]
    return errors[-1] if errors else (lines[-1] if lines else "(no output)")


def run_pipeline(
    stages: list[Stage], out_dir: Path, common: list[str] | None = None, model_in: Path | None = None
) -> list[dict]:
    """Run the stages in order into `out_dir`; returns the stage records written to pipeline.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    records: list[dict] = []
    for i, stage in enumerate(stages, start=1):
        run_dir = out_dir / f"{i}_{stage.name}"
        cmd = stage_command(stage, run_dir, model_in, common or [])
        record = {"stage": stage.name, "run_dir": str(run_dir), "input_model": str(model_in or "(config)")}
        print(f"[pipeline] stage {i}/{len(stages)} {stage.name}: {' '.join(cmd[1:])}", flush=True)
        env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        (out_dir / f"{i}_{stage.name}.log").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            records.append(record | {"status": "failed", "error": last_error(run_dir, proc.stderr)})
            write_records(out_dir, records)
            done = ", ".join(r["run_dir"] for r in records[:-1]) or "none"
            raise PipelineError(
                f"pipeline stopped: stage {i} '{stage.name}' failed (exit {proc.returncode}): "
                f"{records[-1]['error']}. Log: {out_dir / f'{i}_{stage.name}.log'}. "
                f"Earlier stages kept: {done}"
            )
        try:
            model_in = stage_output(run_dir)
        except ExportError as err:  # e.g. prompt tuning: nothing to merge into the next stage's base
            raise PipelineError(
                f"pipeline stopped: stage {i} '{stage.name}' cannot hand on a model: {err}"
            ) from err
        records.append(record | {"status": "completed", "output_model": str(model_in)})
        write_records(out_dir, records)
    return records


def write_records(out_dir: Path, records: list[dict]) -> None:
    """pipeline.json: one record per stage run so far."""
    (out_dir / "pipeline.json").write_text(json.dumps({"stages": records}, indent=2) + "\n")


SCORE_ENDINGS = ("exact_match", "accuracy", "accuracies")


def default_stage_metrics(rows: list[Row]) -> list[str]:
    """Every stage's task scores (`eval/`, and `pruned/` after a pruning stage), then cost columns."""
    keys = {k for row in rows for k, v in row.runs[0].metrics.items() if isinstance(v, (int, float))}
    scores = sorted(k for k in keys if k.startswith(("eval/", "pruned/")) and k.endswith(SCORE_ENDINGS))
    extra = ("prune/sparsity", "prune/params", "train_loss_final", "wall_seconds")
    return scores + [k for k in extra if k in keys]


def stage_table(out_dir: Path, records: list[dict], metrics: list[str] | None = None) -> str:
    """Markdown table of every completed stage's scores (rows in stage order)."""
    rows = []
    for record in records:
        run_dir = Path(record["run_dir"])
        data = json.loads((run_dir / "metrics.json").read_text())
        run = Run(path=run_dir.relative_to(out_dir), metrics=data, root=out_dir)
        rows.append(Row(label=f"{run_dir.name} ({data.get('objective')}, {data.get('adapter')})", runs=[run]))
    if metrics is None:
        metrics = default_stage_metrics(rows)
    table = build_table(rows, metrics)
    table.shared = []  # one run per row: every label is the stage itself
    return to_markdown(table)
