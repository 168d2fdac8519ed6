"""The benchmark's arithmetic against hand numbers: tokens, FLOPs, ratios, step time."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaForCausalLM

from tests.conftest import tiny_llama_config
from tunelab.core.constants import IGNORE_INDEX
from tunelab.data.base import TokenizedDataModule
from tunelab.scaling.throughput import (
    ModelShape,
    attention_flops,
    batch_stats,
    count_tokens,
    gemm_flops,
    model_shape,
    paired_ratios,
    profile_breakdown,
    training_flops,
)
from tunelab.training.module import step_time_metrics
from tunelab.workflows.bench import (
    check_counted,
    first_batches,
    loop_seconds,
    row_stats,
    rows_in_order,
    step_stats,
)

I = IGNORE_INDEX  # noqa: E741


def tiny() -> LlamaForCausalLM:
    config = tiny_llama_config(
        vocab_size=100,
        hidden_size=16,
        intermediate_size=24,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config)


def test_model_shape_counts_matmul_weights_by_hand():
    # Per layer: q 16x16, k and v 16x8 (2 kv heads of dim 4), o 16x16, gate/up 16x24, down 24x16.
    per_layer = 256 + 128 + 128 + 256 + 3 * 16 * 24
    shape = model_shape(tiny())
    assert shape == ModelShape(body_weights=2 * per_layer, head_weights=1600, layers=2, attention_width=16)


def test_lora_layers_are_not_counted_as_body():
    torch.manual_seed(0)
    plain = model_shape(tiny())
    adapted = model_shape(get_peft_model(tiny(), LoraConfig(r=2, target_modules=["q_proj", "v_proj"])))
    assert adapted == plain


def test_training_flops_full_and_lora_by_hand():
    shape = ModelShape(body_weights=1000, head_weights=200, layers=3, attention_width=8)
    # Two sequences of 4 and 2 tokens: attention 6 * (16 + 4) * 8 * 3 = 2880.
    assert attention_flops(shape, [4, 2]) == 2880
    # Full: 6 * 1000 * 6 tokens + 6 * 200 * 3 supervised + 2880.
    assert training_flops(shape, 6, 3, [4, 2], full=True) == 36000 + 3600 + 2880
    # LoRA with 50 adapter weights: 4 * 1000 * 6 + 4 * 200 * 3 + 6 * 50 * 6 + 2880.
    assert training_flops(shape, 6, 3, [4, 2], full=False, adapter_weights=50) == 24000 + 2400 + 1800 + 2880


def test_gemm_flops():
    assert gemm_flops(2, 3, 4) == 48


def test_count_tokens_skips_padding_prompt_and_first_token():
    rows = [
        {"input_ids": [5, 6, 7, 8], "labels": [I, I, 7, 8]},
        {"input_ids": [5, 6], "labels": [5, 6]},  # the first token is never a target
    ]
    assert count_tokens(rows) == (6, 3)


def test_paired_ratios_median_and_spread():
    summary = paired_ratios([10.0, 30.0, 12.0], [5.0, 10.0, 12.0])
    assert summary.ratios == [2.0, 3.0, 1.0]
    assert summary.median == 2.0
    assert summary.spread == (1.0, 3.0)
    with pytest.raises(ValueError, match="equally many"):
        paired_ratios([1.0], [1.0, 2.0])


def test_step_time_leaves_checkpoint_writes_out():
    class IO:
        seconds = 2.0

    out = step_time_metrics(tokens=800, fit_seconds=10.0, checkpoint_io=IO())
    assert out == {"train_tokens_per_sec": 100.0, "train_seconds": 8.0, "checkpoint_seconds": 2.0}
    assert step_time_metrics(800, 10.0, object())["train_tokens_per_sec"] == 80.0


def test_batch_stats_padded_and_packed_by_hand():
    padded = {
        "input_ids": torch.zeros(2, 4, dtype=torch.long),
        "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]]),
        "labels": torch.tensor([[I, I, 3, 4], [I, 5, I, I]]),
    }
    assert batch_stats(padded) == (6, 3, [4, 2])
    packed = {  # one row: examples of 3 and 2 tokens, then 2 padding positions (ids 0, 1 again)
        "input_ids": torch.zeros(1, 7, dtype=torch.long),
        "attention_mask": torch.tensor([[1, 1, 1, 1, 1, 0, 0]]),
        "position_ids": torch.tensor([[0, 1, 2, 0, 1, 0, 1]]),
        "labels": torch.tensor([[I, 2, 3, I, 5, I, I]]),
    }
    assert batch_stats(packed) == (5, 3, [3, 2])


def test_profile_breakdown_by_hand():
    durations = {
        "run_training_epoch": 10.0,
        "run_training_batch": 9.0,
        "[_TrainingEpochLoop].train_dataloader_next": 0.5,
        "[LightningModule]TuneLabModule.optimizer_step": 8.5,  # closure included
        "[Strategy]SingleDeviceStrategy.training_step": 3.0,
        "[Strategy]SingleDeviceStrategy.backward": 4.0,
        "[LightningModule]TuneLabModule.configure_gradient_clipping": 0.2,
        "[Callback]TrainingGuards.on_before_optimizer_step": 0.3,  # inside the closure
        "[Callback]TrainingGuards.on_train_batch_end": 0.1,  # outside
        "save_checkpoint": 1.0,
    }
    out = profile_breakdown(durations)
    assert out["forward+loss+log"] == 3.0
    assert out["backward"] == 4.0
    assert out["optimizer"] == pytest.approx(8.5 - 3.0 - 4.0 - 0.2 - 0.3)
    assert out["guards"] == pytest.approx(0.4)
    assert out["data"] == 0.5
    assert out["loop bookkeeping"] == pytest.approx(0.5)
    assert out["checkpoint write"] == 1.0


class ThreeExamples(TokenizedDataModule):
    """Examples of 2, 3 and 4 tokens, every label after the first supervised."""

    def encode(self, records):
        return [{"input_ids": [1] * n, "labels": [I] + [1] * (n - 1)} for n in (2, 3, 4)]


def three_examples(batch_size: int) -> ThreeExamples:
    data = ThreeExamples([{}], batch_size=batch_size)
    data.attach_tokenizer(SimpleNamespace(pad_token_id=0))
    return data


def test_bench_counts_every_step_a_run_trains_on_across_epochs():
    # Batches of 2 from 3 examples: an epoch is 2 steps (2 examples, then 1), 9 tokens, 6 supervised.
    # 5 steps: two whole epochs (18 tokens, 12 supervised) and the first batch of the third.
    data = three_examples(batch_size=2)
    third = data.train_dataloader().sampler.order(2)[:2]
    extra = sum((2, 3, 4)[i] for i in third)
    batches = first_batches(data, 5)
    assert len(batches) == 5
    stats = step_stats(batches)
    assert stats["tokens"] == 18 + extra
    assert stats["supervised_tokens"] == 12 + extra - 2
    assert sorted(stats["lengths"]) == sorted([2, 3, 4, 2, 3, 4, *((2, 3, 4)[i] for i in third)])


def test_bench_rows_follow_the_sampler_over_epochs_and_mismatch_is_an_error():
    data = three_examples(batch_size=3)
    rows = rows_in_order(data, 7)
    assert row_stats(rows)["tokens"] == 9 + 9 + len(rows[6]["input_ids"])
    assert row_stats(rows)["supervised_tokens"] == 6 + 6 + len(rows[6]["input_ids"]) - 1
    check_counted(18, 18, 2, 2)
    with pytest.raises(RuntimeError, match="counted 9 tokens over 2 steps"):
        check_counted(9, 18, 2, 2)


def test_step_loop_seconds_leave_checkpoint_writes_out():
    assert loop_seconds(start=10.0, end=25.0, checkpoint_seconds=3.0) == 12.0


def test_an_arm_leaves_no_directory_behind(tiny_model_dir, tmp_path, monkeypatch):
    # A full-SFT arm's checkpoint is the model's size again: 1.6 GB per arm on SmolLM2.
    import tempfile

    from tunelab.workflows.bench import BenchArguments, run_arm

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    args = BenchArguments(model=str(tiny_model_dir), gemm_rows=8, gemm_seconds=0.01)
    assert run_arm("gemm", args)["flops_per_sec"] > 0
    assert list(tmp_path.iterdir()) == []
