"""lm-eval on the in-memory model: its scores equal counts made here by hand with plain torch."""

from __future__ import annotations

import copy
from fnmatch import fnmatch
from pathlib import Path

import pytest
import tomllib
import torch
from peft import LoraConfig, get_peft_model

from tunelab.core.config import ConfigError
from tunelab.evaluation.lm_eval_harness import SHIPPED_TASKS, LmEvalTasks, flatten_results, metric_name
from tunelab.evaluation.lm_eval_tasks.tiny_world import sum_choices
from tunelab.models.load import load_pretrained
from tunelab.world import tasks

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 12


@pytest.fixture(scope="module")
def lora_model(tiny_model_dir):
    """The tiny base under a LoRA whose B is not zero: lm-eval must score the adapted model."""
    loaded = load_pretrained(str(tiny_model_dir))
    model = get_peft_model(loaded.model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.4)  # large enough that some reversals fail
    model.eval()
    return model, loaded.tokenizer


def ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@torch.no_grad()
def continuation_logprob(model, tokenizer, context: str, continuation: str) -> float:
    """log p(continuation | context), summed over its tokens, from one forward pass."""
    ctx, cont = ids(tokenizer, context), ids(tokenizer, continuation)
    logits = model(input_ids=torch.tensor([ctx + cont])).logits[0]
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    return sum(logprobs[len(ctx) - 1 + i, tok].item() for i, tok in enumerate(cont))


@torch.no_grad()
def greedy(model, tokenizer, prompt: str, max_new: int, stops: tuple[str, ...]) -> str:
    """Greedy decoding one token at a time, cut at the first stop string."""
    tokens = ids(tokenizer, prompt)
    out = ""
    for _ in range(max_new):
        nxt = int(model(input_ids=torch.tensor([tokens])).logits[0, -1].argmax())
        tokens.append(nxt)
        out = tokenizer.decode(tokens[len(ids(tokenizer, prompt)) :])
        if any(s in out for s in stops):
            break
    for stop in stops:
        out = out.split(stop)[0]
    return out


def test_multiple_choice_accuracy_equals_a_hand_count(lora_model):
    model, tokenizer = lora_model
    result = LmEvalTasks(tasks=["tiny_arithmetic_mc"], limit=LIMIT, num_fewshot=0).run(model, tokenizer, 8)
    hits = []
    for i, ex in enumerate(tasks.load_split("arithmetic", "test")[:LIMIT]):
        choices, gold = sum_choices(ex.raw_prompt, seed=i)
        context = f"<|user|>{ex.prompt}<|end|><|assistant|>{ex.raw_prompt}"
        scores = [continuation_logprob(model, tokenizer, context, c) for c in choices]
        hits.append(max(range(len(choices)), key=scores.__getitem__) == gold)
    assert result["tasks"]["tiny_arithmetic_mc"]["acc"] == pytest.approx(sum(hits) / LIMIT)
    assert result["tasks"]["tiny_arithmetic_mc"]["n"] == LIMIT
    assert [s["acc"] for s in result["samples"]] == [float(h) for h in hits]


def test_multiple_choice_loglikelihoods_equal_hand_ones(lora_model):
    model, tokenizer = lora_model
    model.train()  # as during training: lm-eval runs in eval mode, then training mode is restored
    result = LmEvalTasks(tasks=["tiny_arithmetic_mc"], limit=3, num_fewshot=0).run(model, tokenizer, 4)
    assert model.training
    model.eval()
    items = tasks.load_split("arithmetic", "test")[:3]
    for i, (ex, sample) in enumerate(zip(items, result["samples"], strict=True)):
        choices, _ = sum_choices(ex.raw_prompt, seed=i)
        context = f"<|user|>{ex.prompt}<|end|><|assistant|>{ex.raw_prompt}"
        assert sample["prompt"] == context
        hand = [continuation_logprob(model, tokenizer, context, c) for c in choices]
        assert [ll for ll, _ in sample["prediction"]] == pytest.approx(hand, abs=1e-4)


def test_generation_exact_match_equals_a_hand_count(lora_model):
    model, tokenizer = lora_model
    result = LmEvalTasks(tasks=["tiny_reverse"], limit=LIMIT, num_fewshot=0).run(model, tokenizer, 5)
    hits = []
    for ex in tasks.load_split("reverse", "test")[:LIMIT]:
        said = greedy(model, tokenizer, f"<|user|>{ex.prompt}<|end|><|assistant|>", 7, ("<|end|>", "\n"))
        hits.append(said == ex.completion)
    assert 0 < sum(hits) < LIMIT, "a test that can fail needs both hits and misses"
    assert result["tasks"]["tiny_reverse"]["exact_match"] == pytest.approx(sum(hits) / LIMIT)
    assert [s["exact_match"] for s in result["samples"]] == [float(h) for h in hits]


def test_few_shot_examples_come_from_train_and_precede_the_question(lora_model):
    model, tokenizer = lora_model
    result = LmEvalTasks(tasks=["tiny_arithmetic"], limit=2, num_fewshot=2).run(model, tokenizer, 2)
    train_questions = {ex.prompt for ex in tasks.load_split("arithmetic", "train")[:200]}
    for ex, sample in zip(tasks.load_split("arithmetic", "test")[:2], result["samples"], strict=True):
        turns = sample["prompt"].split("<|user|>")[1:]
        assert len(turns) == 3 and turns[-1] == f"{ex.prompt}<|end|><|assistant|>"
        for shot in turns[:2]:
            question, answer = shot.split("<|end|><|assistant|>")
            assert question in train_questions and answer.endswith("<|end|>")


CHATML = (
    "{% for m in messages %}{{ '[' + m['role'] + ']\\n' + m['content'] + '[/]\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '[assistant]\\n' }}{% endif %}"
)


def test_shipped_tasks_follow_the_tokenizers_chat_template_not_hard_coded_markup(lora_model):
    """Another template (ChatML-like, plain characters) gives other prompts: the markup is the tokenizer's."""
    model, tokenizer = lora_model
    other = copy.deepcopy(tokenizer)
    other.chat_template = CHATML
    result = LmEvalTasks(tasks=["tiny_reverse", "tiny_arithmetic_mc"], limit=2, num_fewshot=0).run(
        model, other, 2
    )
    by_task = {}
    for s in result["samples"]:
        by_task.setdefault(s["lm_eval_task"], []).append(s["prompt"])
    for ex, prompt in zip(tasks.load_split("reverse", "test")[:2], by_task["tiny_reverse"], strict=True):
        assert prompt == f"[user]\n{ex.prompt}[/]\n[assistant]\n"
    sums = tasks.load_split("arithmetic", "test")[:2]
    for ex, prompt in zip(sums, by_task["tiny_arithmetic_mc"], strict=True):
        assert prompt == f"[user]\n{ex.prompt}[/]\n[assistant]\n{ex.raw_prompt}"  # the answer's prefix


def test_a_tokenizer_without_chat_template_is_a_config_error(lora_model):
    model, tokenizer = lora_model
    bare = copy.deepcopy(tokenizer)
    bare.chat_template = None
    with pytest.raises(ConfigError, match="apply_chat_template=false"):
        LmEvalTasks(tasks=["tiny_reverse"], limit=1).run(model, bare, 1)


@pytest.mark.slow  # indexing lm-eval's own thousands of task YAMLs takes tens of seconds
def test_unknown_task_is_a_config_error():
    with pytest.raises(ConfigError, match="no_such_task_anywhere"):
        LmEvalTasks(tasks=["no_such_task_anywhere"])


def test_bad_include_path_and_fewshot_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="num_fewshot"):
        LmEvalTasks(num_fewshot=-1)
    with pytest.raises(ConfigError, match="include_path"):
        LmEvalTasks(include_path=[str(tmp_path / "missing")])


def test_metric_names_and_flattening():
    assert metric_name("acc,none") == "acc"
    assert metric_name("exact_match,strict-match") == "exact_match_strict-match"
    results = {
        "results": {"t": {"alias": "t", "acc,none": 0.5, "acc_stderr,none": "N/A", "sample_len": 4}},
        "n-samples": {"t": {"original": 400, "effective": 4}},
    }
    assert flatten_results(results) == {"t": {"acc": 0.5, "n": 4}}


def test_right_sum_is_among_distinct_choices():
    for i, ex in enumerate(tasks.load_split("arithmetic", "test")[:50]):
        choices, gold = sum_choices(ex.raw_prompt, seed=i)
        a, b = (int(x) for x in ex.raw_prompt.rstrip("=").split("+"))
        assert choices[gold] == str(a + b) and len(set(choices)) == 4


def test_shipped_task_files_are_package_data():
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    package = ROOT / "src" / "tunelab"
    files = [p.relative_to(package).as_posix() for p in SHIPPED_TASKS.iterdir() if p.is_file()]
    assert {"evaluation/lm_eval_tasks/tiny_arithmetic.yaml", "evaluation/lm_eval_tasks/tiny_world.py"} <= set(
        files
    )
    for name in files:
        assert any(fnmatch(name, pat) for pat in patterns["tunelab"]), name


def test_hub_offline_refuses_requests_inside_and_restores_after():
    import huggingface_hub
    from huggingface_hub.errors import OfflineModeIsEnabled

    from tunelab.evaluation.lm_eval_harness import hub_offline

    before = huggingface_hub.constants.HF_HUB_OFFLINE
    with hub_offline():
        assert huggingface_hub.is_offline_mode()
        with pytest.raises(OfflineModeIsEnabled):
            huggingface_hub.HfApi().model_info("gpt2")
    assert huggingface_hub.constants.HF_HUB_OFFLINE is before
