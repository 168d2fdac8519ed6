"""`tunelab estimate-memory [train overrides ...]`: training memory per device, nothing loaded.

    tunelab estimate-memory model=llama-2-7b adapter=qlora precision=bf16_mixed
    tunelab estimate-memory model=llama-2-7b adapter=full strategy=fsdp trainer.devices=8

Takes the same overrides as `tunelab train` (the same config is composed) and prints weights,
gradients, optimizer state and activations per device; see docs/scaling.md for the formulas.
"""

from __future__ import annotations

import sys

from hydra import compose, initialize_config_dir

from tunelab.core.config import PACKAGE_CONF as CONF


def main(argv: list[str]) -> int:
    """Compose the training config from `argv[1:]` and print the estimate; 2 on a config error."""
    overrides = argv[1:]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    from tunelab.core.config import ConfigError
    from tunelab.scaling.memory import estimate

    try:
        est = estimate(cfg)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{' '.join(overrides) or '(defaults)'}")
    print(f"batch {cfg.data.batch_size} x {cfg.data.max_length} tokens, precision {cfg.trainer.precision}")
    print(est.report())
    return 0
