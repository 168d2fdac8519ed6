"""Every strategy config composes and instantiates (or is refused by a clear ConfigError), and the
compatibility rules name the keys at fault on machines we describe rather than have."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from lightning.pytorch.strategies import Strategy

import tunelab  # noqa: F401  (registers the config resolvers)
from tests.conftest import ROOT, compose_with
from tunelab.core.config import ConfigError
from tunelab.scaling import compat
from tunelab.scaling.compat import Machine

CPU = Machine()
GPU = Machine(cuda_devices=8, cuda_bf16=True, packages=frozenset({"deepspeed"}))
OLD_GPU = Machine(cuda_devices=1, cuda_bf16=False)
STRATEGIES = sorted(p.stem for p in (ROOT / "conf" / "strategy").glob("*.yaml"))
# What a strategy needs besides itself (compat refuses TP with peft adapters and with clipping).
COMPANIONS = {
    "tensor_parallel": ["adapter=full", "trainer.gradient_clip_val=null"],
    "fsdp2": ["adapter=full", "trainer.gradient_clip_val=null"],
}


# What a CPU machine must say of each strategy, by hand: the keys its refusal names ([] = it runs).
CPU_EXPECTATIONS = {
    "single": [],
    "ddp": [],
    "fsdp2": [],
    "tensor_parallel": [],
    "fsdp": ["trainer.strategy", "fsdp"],
    "fsdp_grad_op": ["trainer.strategy", "fsdp"],
    "fsdp_hybrid": ["trainer.strategy", "fsdp"],
    "fsdp_offload": ["trainer.strategy", "fsdp"],
    "deepspeed_zero1": ["trainer.strategy", "deepspeed"],
    "deepspeed_zero2": ["trainer.strategy", "deepspeed"],
    "deepspeed_zero3": ["trainer.strategy", "deepspeed"],
    "deepspeed_zero3_offload": ["trainer.strategy", "deepspeed"],
}


def test_every_strategy_config_has_an_expectation():
    assert sorted(CPU_EXPECTATIONS) == STRATEGIES


@pytest.mark.parametrize("name", STRATEGIES)
def test_strategy_composes_and_instantiates_or_is_refused(name: str):
    cfg = compose_with([f"strategy={name}", "trainer.accelerator=cpu", *COMPANIONS.get(name, [])])
    on_gpu = compose_with([f"strategy={name}", *COMPANIONS.get(name, [])])
    assert compat.problems(on_gpu, GPU) == []  # a machine with CUDA and deepspeed runs every one
    keys = CPU_EXPECTATIONS[name]
    found = compat.problems(cfg, CPU)
    if keys:  # refused before any loading, naming the strategy
        assert found and all(any(k in msg for msg in found) for k in keys), found
        with pytest.raises(ConfigError, match=r"trainer\.strategy"):
            compat.check(cfg, CPU)
        if name.startswith("deepspeed"):
            return  # DeepSpeedStrategy cannot be built without deepspeed
    else:
        assert found == []
    node = cfg.trainer.strategy
    strategy = instantiate(node) if not isinstance(node, str) else node
    assert isinstance(strategy, (Strategy, str))
    if not found:
        trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
        assert trainer.num_devices >= 1


def test_fsdp_factory_wraps_blocks_and_options():
    from transformers.modeling_layers import GradientCheckpointingLayer

    cfg = compose_with(["strategy=fsdp_offload", "trainer.strategy.activation_checkpointing=true"])
    strategy = instantiate(cfg.trainer.strategy)
    assert strategy.cpu_offload.offload_params
    assert strategy.kwargs["auto_wrap_policy"]._module_classes == {GradientCheckpointingLayer}
    assert strategy._activation_checkpointing_kwargs
    grad_op = instantiate(compose_with(["strategy=fsdp_grad_op"]).trainer.strategy)
    assert str(grad_op.sharding_strategy).endswith("SHARD_GRAD_OP")


def test_deepspeed_stages_compose():
    for stage, name in [(1, "deepspeed_zero1"), (2, "deepspeed_zero2"), (3, "deepspeed_zero3")]:
        assert compose_with([f"strategy={name}"]).trainer.strategy.stage == stage
    offload = compose_with(["strategy=deepspeed_zero3_offload"]).trainer.strategy
    assert offload.offload_optimizer and offload.offload_parameters


RULE_CASES = [
    # (overrides, machine, keys the message must name; [] = allowed)
    (["precision=fp16_mixed"], CPU, ["trainer.precision", "fp16_mixed"]),
    (["precision=fp16_mixed"], GPU, []),
    (["precision=bf16_mixed"], CPU, []),
    (["precision=bf16_true"], OLD_GPU, ["trainer.precision", "bf16"]),
    (["quantization=nf4", "adapter=full"], CPU, ["quantization", "adapter=full"]),
    (["quantization=nf4", "adapter=lisa"], CPU, ["quantization", "adapter=lisa"]),
    (["quantization=int8", "adapter=dora"], CPU, []),
    (["quantization=fp4", "adapter=qlora"], CPU, ["quantization", "adapter.quantization"]),
    (["quantization=nf4_dq", "adapter=qlora"], CPU, []),
    (["strategy=deepspeed_zero2"], Machine(cuda_devices=2), ["trainer.strategy", "deepspeed"]),
    (["strategy=deepspeed_zero2"], GPU, []),
    (["strategy=fsdp"], CPU, ["trainer.strategy", "fsdp"]),
    (["strategy=ddp", "trainer.devices=4"], Machine(cuda_devices=2), ["trainer.devices=4"]),
    (["strategy=ddp", "trainer.devices=4", "trainer.accelerator=cpu"], CPU, []),
    (["strategy=fsdp", "adapter=qlora"], GPU, ["quantization", "trainer.strategy=fsdp"]),
    (["strategy=fsdp", "adapter=galore"], GPU, ["optimizer.optimizer._target_", "trainer.strategy=fsdp"]),
    (["strategy=fsdp", "adapter=galore8bit"], GPU, ["optimizer.optimizer._target_", "trainer.strategy=fsdp"]),
    (["strategy=deepspeed_zero1", "adapter=galore8bit"], GPU, ["GaLore", "trainer.strategy=deepspeed"]),
    (["strategy=ddp", "adapter=galore"], GPU, []),
    (["strategy=fsdp2", "trainer.gradient_clip_val=null"], CPU, ["adapter=lora", "fsdp2"]),
    (["strategy=fsdp2", "adapter=full"], CPU, ["trainer.gradient_clip_val=1.0", "fsdp2"]),
    (["strategy=tensor_parallel", "adapter=full"], CPU, ["trainer.gradient_clip_val=1.0", "tensor_parallel"]),
    (
        ["strategy=tensor_parallel", "trainer.gradient_clip_val=null"],
        CPU,
        ["adapter=lora", "tensor_parallel"],
    ),
    (["strategy=tensor_parallel", "adapter=full", "trainer.gradient_clip_val=null"], CPU, []),
]


@pytest.mark.parametrize(
    ("overrides", "machine", "keys"), RULE_CASES, ids=[" ".join(c[0]) for c in RULE_CASES]
)
def test_rules_name_the_keys(overrides, machine, keys):
    found = compat.problems(compose_with(overrides), machine)
    if not keys:
        assert found == []
        return
    assert len(found) >= 1
    assert any(all(k in msg for k in keys) for msg in found), found


def test_check_raises_one_error_listing_every_problem():
    cfg = compose_with(["precision=fp16_mixed", "quantization=nf4", "adapter=full"])
    with pytest.raises(ConfigError) as err:
        compat.check(cfg, CPU)
    assert "fp16_mixed" in str(err.value) and "adapter=full" in str(err.value)


def test_slurm_examples_use_the_launcher_and_match_devices_to_tasks():
    submitit = (ROOT / "sweeps" / "slurm_multinode.sh").read_text()
    assert "hydra/launcher=slurm" in submitit
    # devices x num_nodes must equal tasks_per_node x nodes for Lightning's SLURM environment
    assert "tasks_per_node=4" in submitit and "trainer.devices=4" in submitit
    assert "nodes=2" in submitit and "trainer.num_nodes=2" in submitit
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=["hydra/launcher=slurm", "strategy=fsdp", "trainer.num_nodes=2"],
            return_hydra_config=True,
        )
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    srun = (ROOT / "sweeps" / "slurm_srun.sbatch").read_text()
    assert "srun python train.py" in srun and "SLURM_NTASKS_PER_NODE" in srun
