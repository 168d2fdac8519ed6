"""train.py's argv fix for hydra-core 1.3 (overrides after -m)."""

from tunelab.cli import hoist_multirun_flag


def test_multirun_flag_moves_to_front():
    argv = ["train.py", "adapter=dora", "objective=simpo", "-m", "rank=8,16,32"]
    assert hoist_multirun_flag(argv) == ["train.py", "-m", "adapter=dora", "objective=simpo", "rank=8,16,32"]
    assert hoist_multirun_flag(["t.py", "--multirun", "a=1"]) == ["t.py", "--multirun", "a=1"]
    assert hoist_multirun_flag(["t.py", "a=1"]) == ["t.py", "a=1"]


def test_an_unknown_verb_exits_2_and_lists_the_verbs(capsys):
    from tunelab.cli import VERBS, main

    assert main(["trian"]) == 2
    err = capsys.readouterr().err
    assert "'trian'" in err and all(name in err for name in VERBS)


def test_key_value_arguments_are_typed_and_name_the_bad_key():
    import pytest

    from tunelab.apps.arguments import parse_arguments
    from tunelab.apps.table import TableArguments
    from tunelab.core.config import ConfigError

    args = parse_arguments("table", TableArguments, ["results=r", "metrics=[a,b]", "baseline=adapter=lora"])
    assert (args.results, args.metrics, args.baseline) == ("r", ["a", "b"], "adapter=lora")
    with pytest.raises(ConfigError, match="missing results="):
        parse_arguments("table", TableArguments, ["baseline=x"])
    with pytest.raises(ConfigError, match="metricz"):
        parse_arguments("table", TableArguments, ["results=r", "metricz=[a]"])


def test_the_command_runs_from_any_directory_and_a_typo_fails_before_torch_loads(tmp_path):
    import subprocess
    import sys

    probe = (
        "import sys, runpy; sys.argv = ['tunelab', 'train', 'adapter=lorra'];\n"
        "try:\n    runpy.run_module('tunelab', run_name='__main__')\n"
        "except SystemExit as e:\n    print('torch loaded:', 'torch' in sys.modules, 'exit', e.code)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert "Could not find 'adapter/lorra'" in proc.stderr + proc.stdout
    assert "torch loaded: False" in proc.stdout


def test_a_users_config_folder_adds_options_on_top_of_the_shipped_ones(tmp_path):
    import subprocess
    import sys

    (tmp_path / "mine" / "adapter").mkdir(parents=True)
    (tmp_path / "mine" / "adapter" / "my_lora.yaml").write_text(
        "defaults:\n  - lora\n  - _self_\nname: my_lora\n"
    )
    cmd = [
        sys.executable,
        "-m",
        "tunelab",
        "train",
        "--config-dir",
        "mine",
        "adapter=my_lora",
        "--cfg",
        "job",
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "name: my_lora" in proc.stdout and "tunelab.adapters.peft_adapter.PeftAdapter" in proc.stdout


def test_bench_refuses_an_unknown_pair_by_name(capsys):
    from tunelab.cli import main

    assert main(["bench", "model=/nowhere", "pairs=[lora,nope]"]) == 2
    assert "pairs has unknown ['nope']" in capsys.readouterr().err
