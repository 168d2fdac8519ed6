"""Turn a finished run's artifact into a standalone HF model directory (`tunelab export`).

The run's own resolved `config.yaml` says which adapter and base it used; the adapter class
knows how to reload its artifact and merge it (`Adapter.load`, `Adapter.merge`, `Adapter.export`).
"""

from __future__ import annotations

import json
from pathlib import Path

from hydra.utils import instantiate

from tunelab.core.job import run_config
from tunelab.scaling.model_levers import build_adapter_for


def export_run(run_dir: Path, out_dir: Path | None = None) -> Path:
    """Write `<run_dir>/export` (or `out_dir`): a merged model AutoModelForCausalLM loads."""
    run_dir = Path(run_dir)
    cfg = run_config(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    if metrics.get("status") != "completed":
        raise ValueError(f"run_dir={run_dir}: status is {metrics.get('status')!r}, not 'completed'")
    adapter = build_adapter_for(cfg)  # with its quantized base when the run had `quantization=`
    loaded = instantiate(cfg.model)
    merged = adapter.export(loaded.model, run_dir / metrics["artifact"])
    target = Path(out_dir) if out_dir else run_dir / "export"
    merged.save_pretrained(target, safe_serialization=True)
    loaded.tokenizer.save_pretrained(target)
    return target
