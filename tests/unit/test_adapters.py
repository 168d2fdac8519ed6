"""The hand-counted adapters of conf/adapter/ (HAND_COUNTED), trained in-process on the tiny base.

Each numbers check is against a hand formula written here from the model's config.json, never
against the adapter code: trainable counts, byte counts, GaLore's state shapes, QLoRA's storage.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback
from transformers import AutoConfig, AutoModelForCausalLM

import tunelab  # noqa: F401  (registers the config resolvers)
from tests.conftest import ROOT
from tests.unit.adapter_helpers import Fit, fit_adapter
from tunelab.adapters.base import ExportError, build_adapter, count_parameters, decoder_layers
from tunelab.core.config import ConfigError
from tunelab.scaling.measure import allocated_bytes

# The options with a hand formula below; the rest of peft's tuners are tested against peft's own
# count in test_peft_zoo.py (which also checks that every yaml is tested by one of the two).
HAND_COUNTED = frozenset(
    {
        "dora", "freeze", "full", "galore", "galore8bit", "houlsby", "ia3", "lisa", "lora",
        "loraplus", "pissa", "prefix", "prompt", "ptuning", "ptuning_v2", "qlora", "qlora8bit", "rslora",
    }
)  # fmt: skip
ADAPTERS = sorted(HAND_COUNTED)
NOT_MERGEABLE = {"prompt", "ptuning", "prefix", "ptuning_v2", "houlsby"}
QUANTIZED = {"qlora", "qlora8bit"}
RANK, STEPS = 4, 6
# Test-sized knobs: a short constant-lr fit on 48 examples; LISA redraws every 3 steps.
OVERRIDES = [f"rank={RANK}", "eval=none", "data.train.size=48", "data.batch_size=8", "adapter.interval=3"]


def compose_adapter(name: str, *extra: str):
    overrides = [f"adapter={name}", *OVERRIDES, *extra]
    if name != "lisa":
        overrides.remove("adapter.interval=3")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def bnb_unavailable_reason(bits: int) -> str | None:
    """Why this machine cannot run bitsandbytes `bits`-bit layers, or None."""
    from tunelab.adapters.qlora import Quantization, capability_error

    reason = capability_error(Quantization(bits=bits), torch.device("cpu"))
    return f"bitsandbytes cannot run {bits}-bit layers here: {reason}" if reason else None


@cache
def galore8bit_unavailable_reason() -> str | None:
    from tunelab.adapters.galore import step_error

    reason = step_error("tunelab.adapters.galore.PortableGaLoreAdamW8bit")
    return f"galore-torch's 8-bit AdamW cannot step here: {reason}" if reason else None


def skip_if_no_bnb(name: str) -> None:
    """Skip, with the reason, the bitsandbytes methods this machine cannot run."""
    if name in QUANTIZED:
        reason = bnb_unavailable_reason(8 if name == "qlora8bit" else 4)
    else:
        reason = galore8bit_unavailable_reason() if name == "galore8bit" else None
    if reason:
        pytest.skip(reason)


# ---------- hand formulas from config.json ----------


@dataclass(frozen=True)
class Shapes:
    d: int
    kv: int
    ff: int
    layers: int
    vocab: int

    @classmethod
    def of_tiny(cls) -> Shapes:
        from tunelab.world import asset_path

        c = AutoConfig.from_pretrained(asset_path("tiny-llama"))
        head_dim = c.hidden_size // c.num_attention_heads
        return cls(
            c.hidden_size,
            c.num_key_value_heads * head_dim,
            c.intermediate_size,
            c.num_hidden_layers,
            c.vocab_size,
        )

    def linears(self) -> list[tuple[str, int, int]]:
        """(name, d_in, d_out) of one block's linear layers."""
        d, kv, ff = self.d, self.kv, self.ff
        return [
            ("q", d, d),
            ("k", d, kv),
            ("v", d, kv),
            ("o", d, d),
            ("gate", d, ff),
            ("up", d, ff),
            ("down", ff, d),
        ]

    def block(self) -> int:
        return sum(i * o for _, i, o in self.linears()) + 2 * self.d  # + two RMSNorm weights

    def total(self) -> int:
        return self.vocab * self.d + self.layers * self.block() + self.d  # tied head, final norm


def expected_trainable(name: str, s: Shapes) -> int:
    """The method's trainable parameter count, from its paper's description."""
    r, L_ = RANK, s.layers
    lora = L_ * sum(r * (i + o) for _, i, o in s.linears())
    n, h = 16, 128  # num_virtual_tokens, encoder_hidden_size of the yamls
    formulas = {
        "full": s.total(),
        "galore": s.total(),
        "galore8bit": s.total(),
        "freeze": s.block(),  # train_layers: 1
        "lisa": s.total() - L_ * s.block() + 2 * s.block(),  # active_layers: 2
        "lora": lora,
        "rslora": lora,
        "pissa": lora,
        "loraplus": lora,
        "qlora": lora,
        "qlora8bit": lora,
        "dora": lora + L_ * sum(o for _, _, o in s.linears()),  # + a magnitude per output
        # one vector per target: outputs, except down_proj (feed-forward) scales its input
        "ia3": L_ * sum(i if m == "down" else o for m, i, o in s.linears()),
        "prompt": n * s.d,
        "ptuning": n * s.d + (s.d * h + h) + (h * h + h) + (h * s.d + s.d),
        "prefix": n * s.d + (s.d * h + h) + (h * 2 * L_ * s.d + 2 * L_ * s.d),
        "ptuning_v2": n * 2 * L_ * s.d,  # a key and a value prefix per layer
        "houlsby": 2 * L_ * (s.d * r + r + r * s.d + s.d),
    }
    return formulas[name]


# ---------- one in-process fit per adapter, shared by the tests ----------


def logits(model, batch) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


@cache
def fit(name: str) -> Fit:
    """Apply `adapter=name` to the tiny base and run STEPS optimizer steps at constant lr."""
    return fit_adapter(compose_adapter(name), STEPS, extra_callbacks=(LayerRecorder(),))


class LayerRecorder(Callback):
    """Per step: which blocks had trainable weights, and which blocks' weights changed."""

    def __init__(self) -> None:
        self.steps: list[tuple[set[int], set[int]]] = []
        self._before: list[list[torch.Tensor]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._before = [[p.detach().clone() for p in b.parameters()] for b in decoder_layers(pl_module.model)]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        blocks = list(decoder_layers(pl_module.model))
        active = {i for i, b in enumerate(blocks) if any(p.requires_grad for p in b.parameters())}
        changed = {
            i
            for i, b in enumerate(blocks)
            if any(not torch.equal(p, q) for p, q in zip(b.parameters(), self._before[i], strict=True))
        }
        self.steps.append((active, changed))


# ---------- per-adapter properties ----------


@pytest.mark.parametrize("name", ADAPTERS)
def test_a_few_steps_lower_the_loss(name):
    skip_if_no_bnb(name)
    f = fit(name)
    assert f.loss_after < f.loss_before, (f.loss_before, f.loss_after)


@pytest.mark.parametrize("name", ADAPTERS)
def test_frozen_weights_are_bit_identical(name):
    skip_if_no_bnb(name)
    f = fit(name)
    after = dict(f.model.named_parameters())
    for param_name, before in f.frozen_before.items():
        if after[param_name].requires_grad:  # LISA: a block frozen at the start, drawn later
            continue
        assert torch.equal(after[param_name], before), param_name


@pytest.mark.parametrize("name", ADAPTERS)
def test_trainable_count_matches_the_formula(name):
    skip_if_no_bnb(name)
    assert fit(name).trainable == expected_trainable(name, Shapes.of_tiny())


@pytest.mark.parametrize("name", ADAPTERS)
def test_save_then_reload_gives_the_same_logits(name, tmp_path):
    skip_if_no_bnb(name)
    f = fit(name)
    artifact = f.adapter.save(f.model, tmp_path)
    fresh = build_adapter(f.cfg.adapter)
    reloaded = fresh.load(instantiate(f.cfg.model).model, artifact)
    # PiSSA reloads as the equivalent rank-2r LoRA on the original base: equal up to fp32 rounding.
    atol = 1e-3 if name == "pissa" else 1e-5
    torch.testing.assert_close(logits(reloaded, f.batch), logits(f.model, f.batch), atol=atol, rtol=1e-3)


@pytest.mark.parametrize("name", ADAPTERS)
def test_export_loads_with_automodel_and_gives_the_same_logits(name, tmp_path):
    skip_if_no_bnb(name)
    f = fit(name)
    artifact = f.adapter.save(f.model, tmp_path)
    fresh = build_adapter(f.cfg.adapter)
    base = instantiate(f.cfg.model).model
    if name in NOT_MERGEABLE:
        with pytest.raises(ExportError, match=rf"adapter={name} cannot be merged"):
            fresh.export(base, artifact)
        return
    fresh.export(base, artifact).save_pretrained(tmp_path / "export")
    standalone = AutoModelForCausalLM.from_pretrained(tmp_path / "export")
    trained = f.model
    if name == "qlora8bit":
        # LLM.int8 also quantizes the *activations* in its forward, which no float model can
        # reproduce: compare with the same trained adapter on its int8 base computing in float.
        from tunelab.adapters.qlora import dequantize_base

        trained = dequantize_base(build_adapter(f.cfg.adapter).load(instantiate(f.cfg.model).model, artifact))
    torch.testing.assert_close(logits(standalone, f.batch), logits(trained, f.batch), atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("name", ["lora", "full", "lisa", "qlora"])
def test_allocated_bytes_match_hand_counts(name):
    """fp32 weights; a gradient per trainable weight; AdamW: two moments + a step per tensor."""
    skip_if_no_bnb(name)
    f = fit(name)
    s = Shapes.of_tiny()
    measured = allocated_bytes(f.model, [f.optimizer])
    state_tensors = [p for p in f.optimizer.state if f.optimizer.state[p]]
    in_state = sum(p.numel() for p in state_tensors)
    assert measured["optimizer_state_bytes"] == 2 * 4 * in_state + 4 * len(state_tensors)
    if name == "lisa":  # gradients held for the blocks of the last draw + the always-trained rest
        assert measured["grad_bytes"] == 4 * expected_trainable("lisa", s)
        assert in_state > expected_trainable("lisa", s) - 2 * s.block()
        return
    assert measured["grad_bytes"] == 4 * expected_trainable(name, s)
    assert in_state == expected_trainable(name, s)
    if name != "qlora":
        assert measured["weight_bytes"] == 4 * (
            s.total() + (expected_trainable(name, s) if name == "lora" else 0)
        )


# ---------- method-specific checks ----------


def test_qlora_linear_layers_are_4bit_and_weigh_far_less_than_lora():
    skip_if_no_bnb("qlora")
    import bitsandbytes as bnb

    q, lora = fit("qlora"), fit("lora")
    s = Shapes.of_tiny()
    quantized = [m for m in q.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(quantized) == s.layers * len(s.linears())
    for layer in quantized:  # NF4: two weights per byte
        assert layer.weight.dtype == torch.uint8
        assert layer.weight.numel() == layer.in_features * layer.out_features // 2
        assert layer.weight.quant_state.quant_type == "nf4" and layer.weight.quant_state.nested
    # Counted as the weights they stand for, not as packed bytes.
    assert count_parameters(q.model) == (
        expected_trainable("qlora", s),
        s.total() + expected_trainable("qlora", s),
    )
    q_bytes = allocated_bytes(q.model, [])["weight_bytes"]
    lora_bytes = allocated_bytes(lora.model, [])["weight_bytes"]
    assert q_bytes < 0.3 * lora_bytes, (q_bytes, lora_bytes)


def test_qlora8bit_linear_layers_are_int8():
    skip_if_no_bnb("qlora8bit")
    import bitsandbytes as bnb

    layers = [m for m in fit("qlora8bit").model.modules() if isinstance(m, bnb.nn.Linear8bitLt)]
    assert len(layers) == Shapes.of_tiny().layers * 7
    assert all(m.weight.dtype == torch.int8 for m in layers)


def test_lisa_changes_only_the_blocks_it_drew():
    f = fit("lisa")
    recorder = f.callbacks[-1]
    history = f.adapter.sampler.history
    assert len(history) == STEPS // 3 + (STEPS % 3 > 0)  # one draw per period of 3 steps
    for step, (active, changed) in enumerate(recorder.steps):
        assert active == set(history[step // 3]) and len(active) == 2
        assert changed == active, f"step {step}: changed {changed}, drawn {active}"


def test_galore_optimizer_state_has_the_projected_rank():
    f = fit("galore")
    projected = [m.weight for m in decoder_layers(f.model).modules() if isinstance(m, torch.nn.Linear)]
    assert len(projected) == Shapes.of_tiny().layers * 7
    for weight in projected:
        state = f.optimizer.state[weight]
        out_dim, in_dim = weight.shape
        # std projection keeps the larger side: (out, r) if out >= in, else (r, in)
        expected = (out_dim, RANK) if out_dim >= in_dim else (RANK, in_dim)
        assert tuple(state["exp_avg"].shape) == expected
        assert tuple(state["exp_avg_sq"].shape) == expected


def test_galore8bit_keeps_projected_states_in_8_bits():
    skip_if_no_bnb("galore8bit")
    f = fit("galore8bit")
    projected = {id(m.weight) for m in decoder_layers(f.model).modules() if isinstance(m, torch.nn.Linear)}
    eight_bit = 0
    for weight in (p for g in f.optimizer.param_groups for p in g["params"]):
        state = f.optimizer.state[weight]
        out_dim, *rest = weight.shape
        if id(weight) in projected:
            in_dim = rest[0]
            expected = (out_dim, RANK) if out_dim >= in_dim else (RANK, in_dim)
        else:
            expected = tuple(weight.shape)
        assert tuple(state["state1"].shape) == expected and tuple(state["state2"].shape) == expected
        # bitsandbytes keeps tensors under 4096 elements (its min_8bit_size) in 32 bits
        expected_dtype = torch.uint8 if state["state1"].numel() >= 4096 else torch.float32
        assert state["state1"].dtype == state["state2"].dtype == expected_dtype
        eight_bit += expected_dtype == torch.uint8
    assert eight_bit > 0  # the embedding and head states at least


def test_loraplus_gives_b_a_larger_learning_rate():
    f = fit("loraplus")
    lr, ratio = f.cfg.lr, f.cfg.adapter.lr_ratio
    groups = f.optimizer.param_groups
    names = {id(p): n for n, p in f.model.named_parameters()}
    b_group = next(g for g in groups if any("lora_B" in names[id(p)] for p in g["params"]))
    a_group = next(g for g in groups if any("lora_A" in names[id(p)] for p in g["params"]))
    assert b_group["lr"] == pytest.approx(lr * ratio) and a_group["lr"] == pytest.approx(lr)
    assert all("lora_B" in names[id(p)] for p in b_group["params"])


def test_pissa_starts_from_the_base_model_exactly(tiny_model_dir):
    """PiSSA moves the principal part of each weight into A·B: the sum is the base again."""
    cfg = compose_adapter("pissa")
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ids = {
        "input_ids": torch.tensor([[5, 40, 41, 42, 2]]),
        "attention_mask": torch.ones(1, 5, dtype=torch.long),
    }
    expected = logits(base, ids)
    adapted = build_adapter(cfg.adapter).apply(AutoModelForCausalLM.from_pretrained(tiny_model_dir))
    torch.testing.assert_close(logits(adapted, ids), expected, atol=1e-4, rtol=1e-4)


# ---------- senseless combinations stop before training ----------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["adapter=prompt", "target_modules=[q_proj]"], r"adapter=prompt with target_modules=\['q_proj'\]"),
        (["adapter=prefix", "target_modules=[q_proj,v_proj]"], r"adapter=prefix with target_modules"),
        (["adapter=qlora", "adapter.quantization.bits=3"], r"adapter\.quantization\.bits=3"),
        (["adapter=qlora", "adapter.quantization.quant_type=int4"], r"adapter\.quantization\.quant_type"),
        (["adapter=galore", "optimizer=adamw"], r"optimizer\.optimizer\._target_=torch\.optim\.AdamW"),
        (["adapter=loraplus", "adapter.lr_ratio=0.5"], r"adapter\.lr_ratio=0\.5"),
        (["adapter=freeze", "adapter.train_layers=0"], r"adapter\.train_layers=0"),
        (["adapter=lisa", "adapter.active_layers=0"], r"adapter\.active_layers=0"),
    ],
)
def test_senseless_combinations_are_config_errors(overrides, message):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    with pytest.raises(ConfigError, match=message):
        build_adapter(cfg.adapter)


def test_galore8bit_refuses_clearly_where_bitsandbytes_cannot_step(monkeypatch):
    from tunelab.adapters import galore

    monkeypatch.setattr(galore, "step_error", lambda optimizer: "RuntimeError: no kernel")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["adapter=galore8bit"])
    with pytest.raises(ConfigError, match=r"adapter=galore8bit .* cannot step on this machine"):
        build_adapter(cfg.adapter)


def test_qlora_refuses_clearly_where_bitsandbytes_cannot_run(monkeypatch):
    from tunelab.adapters import qlora

    monkeypatch.setattr(qlora, "capability_error", lambda q, device: "RuntimeError: no kernel")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["adapter=qlora"])
    with pytest.raises(
        ConfigError, match=r"adapter=qlora \(adapter\.quantization\.bits=4\): bitsandbytes .* cannot"
    ):
        build_adapter(cfg.adapter)


def test_artifact_paths_are_inside_the_run_dir(tmp_path: Path):
    f = fit("lora")
    assert f.adapter.save(f.model, tmp_path) == tmp_path / "adapter"
