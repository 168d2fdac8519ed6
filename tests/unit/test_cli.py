"""train.py's argv fix for hydra-core 1.3 (overrides after -m)."""

from tunelab.cli import hoist_multirun_flag


def test_multirun_flag_moves_to_front():
    argv = ["train.py", "adapter=dora", "objective=simpo", "-m", "rank=8,16,32"]
    assert hoist_multirun_flag(argv) == ["train.py", "-m", "adapter=dora", "objective=simpo", "rank=8,16,32"]
    assert hoist_multirun_flag(["t.py", "--multirun", "a=1"]) == ["t.py", "--multirun", "a=1"]
    assert hoist_multirun_flag(["t.py", "a=1"]) == ["t.py", "a=1"]
