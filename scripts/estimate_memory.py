"""Training memory per device, before anything is loaded.

    python scripts/estimate_memory.py model=llama-2-7b adapter=qlora precision=bf16_mixed
    python scripts/estimate_memory.py model=llama-2-7b adapter=full strategy=fsdp trainer.devices=8

Takes the same overrides as train.py (the same Hydra config is composed) and prints weights,
gradients, optimizer state and activations per device; see docs/scaling.md for the formulas.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TUNELAB_ROOT", str(ROOT))

import tunelab  # noqa: E402, F401  (registers the config resolvers)
from tunelab.core.config import ConfigError  # noqa: E402
from tunelab.scaling.memory import estimate  # noqa: E402


def main(overrides: list[str]) -> int:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    try:
        est = estimate(cfg)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{' '.join(overrides) or '(defaults)'}")
    print(f"batch {cfg.data.batch_size} x {cfg.data.max_length} tokens, precision {cfg.trainer.precision}")
    print(est.report())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
