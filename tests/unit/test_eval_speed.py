"""Generated-token counting for the eval's tokens/s, by hand, and on a real greedy decode."""

from __future__ import annotations

import torch

from tunelab.evaluation.generation import generated_tokens

EOS = 2


def test_rows_count_up_to_and_including_their_first_end_token():
    new = torch.tensor(
        [
            [5, 6, EOS, EOS, EOS],  # 3: ended at the third token, the rest is padding
            [5, 6, 7, 8, 9],  # 5: never ended
            [EOS, EOS, EOS, EOS, EOS],  # 1: ended at once
        ]
    )
    assert generated_tokens(new, EOS) == 9
    assert generated_tokens(new, None) == 15


def test_exact_match_task_reports_tokens_and_speed():
    from tunelab.evaluation.exact_match import ExactMatchTask
    from tunelab.models.load import load_pretrained
    from tunelab.world import asset_path

    loaded = load_pretrained(str(asset_path("tiny-llama")))
    task = ExactMatchTask(task="arithmetic", limit=6, max_new_tokens=4)
    out = task.run(loaded.model, loaded.tokenizer, batch_size=4)
    # At most max_new_tokens per item, at least one each.
    assert 6 <= out["generated_tokens"] <= 24
    assert out["tokens_per_sec"] == out["generated_tokens"] / out["seconds"]
