"""tunelab against TRL and against a plain PyTorch loop: the same job run two ways, interleaved.

    OMP_NUM_THREADS=1 python scripts/bench.py --pairs sft,sft_packed,dpo,plain --repeats 3 --steps 100

Each pair names arm A (tunelab) and arm B (TRL's SFTTrainer/DPOTrainer, or a hand-written PyTorch
loop). Both arms get the same tiny model (the shipped tiny world's Llama, full fine-tuning), the
same pre-tokenized examples in the same fixed order, the same batch, max length, optimizer
(AdamW, cosine schedule with 10 warm-up steps, gradient clipping at 1.0) and number of steps.
Logging and checkpointing are matched: no logger, no checkpoint, no progress bar on either side;
each side still computes the metrics its loop computes every step.

Runs go A, B, A, B, ... each in a fresh process (so peak RSS belongs to one run), and the report
gives per-repeat ratios A/B: non-padding tokens per second (higher is better for A), peak RSS, and
the loss at steps 1, 10 and 100 of both arms with their largest difference.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LR = 3e-4
WARMUP = 10
SEED = 0
PAIRS = {
    "sft": ("tunelab_sft", "trl_sft"),
    "sft_packed": ("tunelab_sft_packed", "trl_sft_packed"),
    "dpo": ("tunelab_dpo", "trl_dpo"),
    "plain": ("tunelab_sft", "plain_sft"),
    "packing": ("tunelab_sft_packed", "tunelab_sft"),  # different batches: compare speed, not losses
}


# ---------------------------------------------------------------- data, shared by every arm


def model_path() -> str:
    from tunelab.world import asset_path

    return str(asset_path("tiny-llama"))


def sft_examples(n: int, max_length: int) -> list[dict]:
    """`n` tokenized chat examples (tiny-world tasks mixed, so lengths vary), in a fixed order."""
    import random

    from tunelab.data.sft import SFTDataModule
    from tunelab.models.load import load_tokenizer
    from tunelab.world.records import chat_records

    records = []
    for task in ("arithmetic", "reverse", "repeat"):
        records += chat_records(task, "train", n, seed=SEED)
    random.Random(SEED).shuffle(records)
    data = SFTDataModule(records[:n], max_length=max_length)
    data.attach_tokenizer(load_tokenizer(model_path()))
    return data.train_examples


def pair_examples(n: int, max_length: int) -> list[dict]:
    """`n` tokenized preference pairs {prompt, chosen, rejected} (token ids), in a fixed order."""
    from tunelab.data.preference import PreferenceDataModule
    from tunelab.models.load import load_tokenizer
    from tunelab.world.records import preference_records

    data = PreferenceDataModule(
        preference_records("arithmetic", "train", n, seed=SEED), max_length=max_length
    )
    data.attach_tokenizer(load_tokenizer(model_path()))
    return data.train_examples


def packed_rows(examples: list[dict], max_length: int) -> list[dict]:
    from tunelab.data.packing import pack_examples

    return pack_examples(examples, max_length)


def load_model():
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_pretrained(model_path(), dtype=torch.float32)
    model.train()
    return model


def tokens_of(rows: list[dict], key: str = "input_ids") -> int:
    return sum(len(r[key]) for r in rows)


# ---------------------------------------------------------------- arm A: tunelab


class FixedOrderData:
    """A LightningDataModule over already-made rows, unshuffled (TRL's side reads the same order)."""

    def __new__(cls, rows: list[dict], collate, batch_size: int):
        import lightning as L
        from torch.utils.data import DataLoader

        class _Data(L.LightningDataModule):
            def train_dataloader(self):
                return DataLoader(rows, batch_size=batch_size, shuffle=False, collate_fn=collate)

        return _Data()


def tunelab_fit(objective, data, steps: int) -> dict:
    """TuneLabModule + Lightning Trainer as tunelab.training.run builds them, minus logger and checkpoints."""
    import lightning as L
    import torch
    from transformers import get_cosine_schedule_with_warmup

    from tunelab.training.callbacks.guards import TrainingGuards
    from tunelab.training.module import TuneLabModule

    model = load_model()
    start = time.perf_counter()  # both arms: from a loaded model to the end of training
    module = TuneLabModule(
        model,
        objective,
        optimizer=partial(torch.optim.AdamW, lr=LR, betas=(0.9, 0.999), weight_decay=0.0),
        scheduler=partial(get_cosine_schedule_with_warmup, num_warmup_steps=WARMUP),
    )
    trainer = L.Trainer(
        max_steps=steps,
        max_epochs=-1,
        accelerator="cpu",
        devices=1,
        gradient_clip_val=1.0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[TrainingGuards()],  # part of every tunelab run: its cost is the harness's
    )
    trainer.fit(module, datamodule=data)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "losses": [float(x) for x in module.step_losses],
        "steps": trainer.global_step,
    }


def tunelab_sft(args) -> dict:
    from tunelab.data.collate import pad_batch
    from tunelab.objectives.causal_lm import CausalLMObjective

    rows = sft_examples(args.steps * args.batch_size, args.max_length)
    data = FixedOrderData(rows, partial(pad_batch, pad_id=0), args.batch_size)
    out = tunelab_fit(CausalLMObjective("sft", chunk_size=args.chunk_size), data, args.steps)
    return out | {"tokens": tokens_of(rows)}


def tunelab_sft_packed(args) -> dict:
    from tunelab.data.packing import pad_packed
    from tunelab.objectives.causal_lm import CausalLMObjective

    rows = packed_rows(sft_examples(args.packed_examples, args.max_length), args.pack_length)
    rows = rows[: args.steps * args.packed_rows]
    data = FixedOrderData(rows, partial(pad_packed, pad_id=0), args.packed_rows)
    out = tunelab_fit(CausalLMObjective("sft", chunk_size=args.chunk_size), data, args.steps)
    return out | {"tokens": tokens_of(rows)}


def tunelab_dpo(args) -> dict:
    from tunelab.data.preference import collate_pairs
    from tunelab.objectives.dpo import DPOObjective

    pairs = pair_examples(args.steps * args.pair_batch, args.max_length)
    data = FixedOrderData(
        pairs, partial(collate_pairs, pad_id=0, max_length=args.max_length), args.pair_batch
    )
    out = tunelab_fit(DPOObjective(beta=0.1, precompute_reference=True), data, args.steps)
    return out | {"tokens": pair_tokens(pairs)}


def pair_tokens(pairs: list[dict]) -> int:
    return sum(2 * len(p["prompt"]) + len(p["chosen"]) + len(p["rejected"]) for p in pairs)


# ---------------------------------------------------------------- arm B: TRL


def trl_common(args, steps: int, batch_size: int) -> dict:
    """TrainingArguments matching arm A: same optimizer, schedule, clipping; no logs/checkpoints."""
    return {
        "output_dir": tempfile.mkdtemp(prefix="bench-trl-"),
        "per_device_train_batch_size": batch_size,
        "max_steps": steps,
        "learning_rate": LR,
        "lr_scheduler_type": "cosine",
        "warmup_steps": WARMUP,
        "weight_decay": 0.0,
        "adam_beta1": 0.9,
        "adam_beta2": 0.999,
        "adam_epsilon": 1e-8,
        "max_grad_norm": 1.0,
        "optim": "adamw_torch",
        "bf16": False,  # TRL defaults to bf16 autocast; tunelab's precision=fp32 runs float32
        "logging_steps": 10,
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "use_cpu": True,
        "seed": SEED,
        "dataloader_num_workers": 0,
        "train_sampling_strategy": "sequential",  # the same fixed order as arm A
    }


def recording(trainer_cls):
    """`trainer_cls` that keeps each step's loss as a tensor (no host sync; one call per step)."""

    class Recording(trainer_cls):
        step_losses: list

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            loss = out[0] if return_outputs else out
            if model.training:
                self.step_losses.append(loss.detach())
            return out

    return Recording


def trl_fit(trainer, start: float) -> dict:
    """Train; `start` was taken before the trainer was built (DPO precomputes references there)."""
    trainer.step_losses = []
    trainer.train()
    seconds = time.perf_counter() - start
    losses = [float(x) for x in trainer.step_losses]
    return {"seconds": seconds, "losses": losses, "steps": trainer.state.global_step}


def trl_sft(args) -> dict:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from tunelab.models.load import load_tokenizer

    rows = sft_examples(args.steps * args.batch_size, args.max_length)
    config = SFTConfig(**trl_common(args, args.steps, args.batch_size), max_length=args.max_length)
    model = load_model()
    start = time.perf_counter()
    trainer = recording(SFTTrainer)(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=load_tokenizer(model_path()),
    )
    return trl_fit(trainer, start) | {"tokens": tokens_of(rows)}


def trl_sft_packed(args) -> dict:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from tunelab.models.load import load_tokenizer

    # The very rows arm A trains on; TRL's padding-free collator reads `seq_lengths` for position ids.
    rows = packed_rows(sft_examples(args.packed_examples, args.max_length), args.pack_length)
    rows = rows[: args.steps * args.packed_rows]
    dataset = Dataset.from_list([{k: r[k] for k in ("input_ids", "labels", "seq_lengths")} for r in rows])
    config = SFTConfig(
        **trl_common(args, args.steps, args.packed_rows),
        max_length=None,
        padding_free=True,
        dataset_kwargs={"skip_prepare_dataset": True},
    )
    model = load_model()
    start = time.perf_counter()
    trainer = recording(SFTTrainer)(
        model=model,
        args=config,
        train_dataset=dataset,
        processing_class=load_tokenizer(model_path()),
    )
    return trl_fit(trainer, start) | {"tokens": tokens_of(rows)}


def trl_dpo(args) -> dict:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from tunelab.models.load import load_tokenizer

    pairs = pair_examples(args.steps * args.pair_batch, args.max_length)
    dataset = Dataset.from_list(
        [{"prompt_ids": p["prompt"], "chosen_ids": p["chosen"], "rejected_ids": p["rejected"]} for p in pairs]
    )

    class PreTokenizedDPOTrainer(recording(DPOTrainer)):
        # TRL 1.x's DPOTrainer always tokenizes text; these rows are already token ids.
        def _prepare_dataset(self, dataset, *args, **kwargs):
            return dataset

    config = DPOConfig(
        **trl_common(args, args.steps, args.pair_batch),
        max_length=args.max_length,
        beta=0.1,
        precompute_ref_log_probs=True,
    )
    model = load_model()
    start = time.perf_counter()
    trainer = PreTokenizedDPOTrainer(
        model=model,
        ref_model=None,
        args=config,
        train_dataset=dataset,
        processing_class=load_tokenizer(model_path()),
    )
    return trl_fit(trainer, start) | {"tokens": pair_tokens(pairs)}


# ---------------------------------------------------------------- arm B: plain PyTorch


def plain_sft(args) -> dict:
    """The same SFT steps as a hand-written loop: forward, masked CE, backward, clip, step."""
    import torch
    from torch.nn import functional as F
    from transformers import get_cosine_schedule_with_warmup

    from tunelab.data.collate import pad_batch

    rows = sft_examples(args.steps * args.batch_size, args.max_length)
    model = load_model()
    start = time.perf_counter()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.999), weight_decay=0.0)
    scheduler = get_cosine_schedule_with_warmup(optimizer, WARMUP, args.steps)
    loader = torch.utils.data.DataLoader(
        rows, batch_size=args.batch_size, shuffle=False, collate_fn=partial(pad_batch, pad_id=0)
    )
    losses = []
    for step, batch in enumerate(loader):
        if step == args.steps:
            break
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss = F.cross_entropy(
            logits[:, :-1].flatten(0, 1), batch["labels"][:, 1:].flatten(), ignore_index=-100
        )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach())
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "losses": [float(x) for x in losses],
        "steps": len(losses),
        "tokens": tokens_of(rows),
    }


# ---------------------------------------------------------------- driver


def run_arm(name: str, args) -> dict:
    """One arm in this (fresh) process; adds peak RSS."""
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT / "src"))
    out = globals()[name](args)
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["tokens_per_sec"] = out["tokens"] / out["seconds"]
    out["ms_per_step"] = 1000 * out["seconds"] / max(out["steps"], 1)
    return out


def in_fresh_process(name: str, args) -> dict:
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(run_arm, name, args).result()


def loss_at(losses: list[float], step: int) -> float:
    return losses[step - 1] if len(losses) >= step else float("nan")


def report(pair: str, a_name: str, b_name: str, a_runs: list[dict], b_runs: list[dict], steps: int) -> None:
    print(f"\n== {pair}: A = {a_name}, B = {b_name}")
    print(
        f"{'repeat':>6} {'A tok/s':>10} {'B tok/s':>10} {'A/B tok/s':>9} {'A ms/step':>9} {'B ms/step':>9}"
        f" {'A RSS MiB':>9} {'B RSS MiB':>9}"
    )
    ratios = []
    for i, (a, b) in enumerate(zip(a_runs, b_runs, strict=True)):
        ratios.append(a["tokens_per_sec"] / b["tokens_per_sec"])
        print(
            f"{i:>6} {a['tokens_per_sec']:>10.0f} {b['tokens_per_sec']:>10.0f} {ratios[-1]:>9.3f}"
            f" {a['ms_per_step']:>9.1f} {b['ms_per_step']:>9.1f}"
            f" {a['peak_rss_mib']:>9.0f} {b['peak_rss_mib']:>9.0f}"
        )
    med = statistics.median
    ms = med(a["ms_per_step"] for a in a_runs) / med(b["ms_per_step"] for b in b_runs)
    rss = med(a["peak_rss_mib"] for a in a_runs) / med(b["peak_rss_mib"] for b in b_runs)
    print(
        f"median A/B tokens/s: {med(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}); "
        f"median A/B ms/step: {ms:.3f}; median A/B peak RSS: {rss:.3f}"
    )
    print(
        f"tokens per run (non-padding): A {a_runs[0]['tokens']}, B {b_runs[0]['tokens']}; "
        f"steps A {a_runs[0]['steps']}, B {b_runs[0]['steps']}"
    )
    a_loss, b_loss = a_runs[0]["losses"], b_runs[0]["losses"]
    marks = [s for s in (1, 10, 100, steps) if s <= steps]
    for s in dict.fromkeys(marks):
        la, lb = loss_at(a_loss, s), loss_at(b_loss, s)
        print(f"loss at step {s:>4}: A {la:.6f}  B {lb:.6f}  |A-B| {abs(la - lb):.2e}")
    n = min(len(a_loss), len(b_loss))
    gaps = [abs(x - y) for x, y in zip(a_loss[:n], b_loss[:n], strict=True)]
    if gaps:
        at = max(range(n), key=gaps.__getitem__)
        print(
            f"max |A-B| loss over all {n} steps: {gaps[at]:.2e} at step {at + 1}; "
            f"median {statistics.median(gaps):.2e}"
        )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", default="sft,sft_packed,dpo,plain", help=f"comma list of {sorted(PAIRS)}")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=16, help="SFT examples per step (padded)")
    p.add_argument("--pair-batch", type=int, default=8, help="DPO pairs per step")
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--pack-length", type=int, default=256, help="packed row length")
    p.add_argument("--packed-rows", type=int, default=2, help="packed rows per step")
    p.add_argument("--chunk-size", type=int, default=None, help="tunelab objective.chunk_size")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads per arm")
    p.add_argument("--json", default=None, help="also write every run's numbers to this JSON file")
    args = p.parse_args(argv)
    args.packed_examples = 12 * args.steps * args.packed_rows  # enough to fill every step's rows
    pairs = [s.strip() for s in args.pairs.split(",") if s.strip()]
    unknown = [s for s in pairs if s not in PAIRS]
    if unknown:
        p.error(f"unknown pair(s) {unknown}; choose from {sorted(PAIRS)}")
    if any(PAIRS[s][1].startswith("trl") for s in pairs):
        try:
            import trl
        except ImportError:
            sys.exit(
                "scripts/bench.py: TRL is not installed; `pip install -e .[bench]` (or run --pairs plain)"
            )
        print(f"trl {trl.__version__}")
    import torch
    import transformers

    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, threads per arm {args.threads}"
    )
    print(f"args: {vars(args)}")
    results: dict[str, dict] = {}
    for pair in pairs:
        a_name, b_name = PAIRS[pair]
        a_runs, b_runs = [], []
        for _ in range(args.repeats):  # A, B, A, B, ...: drifting machine load hits both arms alike
            a_runs.append(in_fresh_process(a_name, args))
            b_runs.append(in_fresh_process(b_name, args))
        report(pair, a_name, b_name, a_runs, b_runs, args.steps)
        results[pair] = {"A": a_name, "B": b_name, "A_runs": a_runs, "B_runs": b_runs}
        if args.json:  # raw per-run numbers (every step's loss), rewritten after each pair
            Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=1))


if __name__ == "__main__":
    main()
