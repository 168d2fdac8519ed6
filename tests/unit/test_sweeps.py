"""Every W&B sweep file parses, and each parameter value is a valid override of the config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir

import tunelab  # noqa: F401  (resolvers)

ROOT = Path(__file__).resolve().parents[2]
SWEEPS = sorted((ROOT / "sweeps").glob("*.yaml"))


def parameter_values(spec: dict) -> list:
    """Concrete values to try: listed values, the fixed value, or a distribution's bounds."""
    if "values" in spec:
        return spec["values"]
    if "value" in spec:
        return [spec["value"]]
    return [spec["min"], spec["max"]]


def test_there_are_sweeps():
    assert len(SWEEPS) >= 2


@pytest.mark.parametrize("path", SWEEPS, ids=[p.name for p in SWEEPS])
def test_sweep_parameters_are_valid_overrides(path: Path):
    sweep = yaml.safe_load(path.read_text())
    assert sweep["program"] == "train.py" and "${args_no_hyphens}" in sweep["command"]
    fixed = [a for a in sweep["command"] if "=" in a and not a.startswith("$")]
    params = sweep["parameters"]
    base = [f"{k}={parameter_values(v)[0]}" for k, v in params.items()]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        for key, spec in params.items():
            for value in parameter_values(spec):
                overrides = [*fixed, *[o for o in base if not o.startswith(f"{key}=")], f"{key}={value}"]
                cfg = compose(config_name="train", overrides=overrides)
                node = cfg[key]
                if isinstance(value, str) and hasattr(node, "name"):
                    assert node.name == value  # the group option really was selected
                elif not hasattr(node, "keys"):
                    assert node == value
