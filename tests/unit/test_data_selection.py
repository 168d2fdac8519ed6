"""LIMA-style selection: each filter removes exactly the records it should, and says how many."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from tests.conftest import ROOT
from tunelab.core.config import ConfigError
from tunelab.data.base import build_data
from tunelab.data.selection import Dedup, KeepBest, LengthFilter, ScoreFilter, View, normalize
from tunelab.data.sft import SFTDataModule


def chat(prompt: str, answer: str) -> dict:
    return {"prompt": prompt, "completion": answer}


def vowels(view: View) -> float:
    """A quality-score hook for the tests: vowels in the response."""
    return float(sum(c in "aeiou" for c in view.response))


RECORDS = [
    chat("What is up?", "nothing"),  # 0
    chat("what is   UP", "nothing much"),  # 1: prompt duplicates 0 after normalisation
    chat("What is up?", "all good"),  # 2: prompt duplicates 0 exactly
    chat("Tell me more", "x"),  # 3: one-character response
    chat("Why?", "because it is so, and always was"),  # 4: long response
    chat("How?", "carefully"),  # 5
]


def kept_prompts(module: SFTDataModule) -> list[str]:
    return [r["messages"][0]["content"] for r in module.records]


def test_exact_and_normalised_dedup_count_what_they_remove():
    exact = SFTDataModule(RECORDS, selection={"dedup": Dedup(part="prompt")})
    assert exact.removed == {"dedup": 1}  # record 2 only
    assert kept_prompts(exact) == ["What is up?", "what is   UP", "Tell me more", "Why?", "How?"]
    loose = SFTDataModule(RECORDS, selection={"dedup": Dedup(part="prompt", normalized=True)})
    assert loose.removed == {"dedup": 2}  # records 1 and 2
    assert normalize("what is   UP") == normalize("What is up?") == "what is up"


def test_dedup_on_the_full_text_keeps_same_prompts_with_different_answers():
    module = SFTDataModule([*RECORDS, RECORDS[0]], selection={"dedup": Dedup(part="full")})
    assert module.removed == {"dedup": 1}  # only the verbatim copy of record 0


def test_length_filters_count_too_short_and_too_long():
    module = SFTDataModule(
        RECORDS, selection={"length": LengthFilter(part="response", min_chars=2, max_chars=12)}
    )
    # Responses: 7, 12, 8, 1, 32, 9 characters -> records 3 (1) and 4 (32) go.
    assert module.removed == {"length": 2}
    assert kept_prompts(module) == ["What is up?", "what is   UP", "What is up?", "How?"]


def test_quality_hook_and_keep_best_n_run_in_order():
    score = "tests.unit.test_data_selection:vowels"
    module = SFTDataModule(
        RECORDS,
        selection={
            "dedup": Dedup(part="prompt", normalized=True),  # -2: records 1, 2
            "quality": ScoreFilter(score=score, min_score=2),  # vowels 2, -, -, 0, 11, 3: -1 (record 3)
            "keep_best": KeepBest(n=2, score=score),  # of 0 (2), 4 (11), 5 (3): keep 4 and 5
        },
    )
    assert module.removed == {"dedup": 2, "quality": 1, "keep_best": 1}
    assert kept_prompts(module) == ["Why?", "How?"]  # original order kept


def test_keep_best_breaks_ties_by_order():
    module = SFTDataModule(
        RECORDS, selection={"best": KeepBest(n=3, score="tests.unit.test_data_selection:vowels")}
    )
    # vowels: 2, 3, 3, 0, 11, 3 -> 4 (11), then 1, 2 and 5 tie at 3: the earlier two (1, 2) stay.
    assert kept_prompts(module) == ["what is   UP", "What is up?", "Why?"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: ScoreFilter(score="tests.unit.nope:f", min_score=0),
            r"score='tests\.unit\.nope:f': expected 'module:function'",
        ),
        (lambda: KeepBest(n=0, score="tunelab.data.selection:response_length"), r"keep_best\.n=0"),
        (lambda: LengthFilter(min_chars=5, max_chars=2), r"max_chars=2 < min_chars=5"),
        (lambda: Dedup(part="answer"), r"dedup\.part='answer': expected one of"),
    ],
)
def test_bad_filter_settings_are_config_errors(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_lima_preset_composes_and_reports_per_filter_counts():
    overrides = ["data/selection=lima", "data.selection.keep_best.n=150", "data.train.size=200"]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    module = build_data(cfg.data)
    # Arithmetic prompts are distinct and answers short: only keep_best removes anything.
    assert module.removed == {"dedup": 0, "length": 0, "keep_best": 50}
    assert len(module.records) == 150
