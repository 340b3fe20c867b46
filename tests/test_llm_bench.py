"""``python -m recnotes.bench llm --train-targets``: the fine-tuning's FLOP count is at least what
a forward pass of its decoder blocks over its tokens must cost (2 FLOPs per weight per token),
and the matrix-multiply rate is a rate (a bigger product takes longer)."""

from __future__ import annotations

import pytest
import torch

from recnotes.bench.llm import matmul_rate, training_rate
from recnotes.data import load_movielens
from recnotes.data.splits import leave_one_out
from recnotes.models.llm import HFBackend, item_titles
from recnotes.models.llm.finetune import _user_windows, take_windows
from recnotes.models.llm.prompts import LIST_HEADER, continuation_text

torch.set_num_threads(1)


@pytest.mark.slow
def test_training_flops_are_at_least_a_forward_pass_of_the_blocks():
    split = leave_one_out(load_movielens())
    backend = HFBackend.from_pretrained(device="cpu", dtype=torch.float32)
    titles = item_titles(split.data)
    out = training_rate(backend, split, titles, targets=60, steps_counted=1)
    assert out["targets"] >= 60 and out["targets_per_second"] > 0
    # the first step's windows, tokenized as the trainer does: every token goes through every block
    windows = take_windows([w for _, w in _user_windows(split, 40, 0)], 60)[:4]
    tokens = sum(len(backend.prompt_ids(LIST_HEADER)) + sum(len(t) for t in backend.continuation_ids(
        [continuation_text(titles[int(i)], "list") for i in w])) for w in windows)
    block_weights = sum(p.numel() for n, p in backend.model.named_parameters()
                        if ".layers." in n and p.dim() == 2)
    targets = sum(len(w) for w in windows)
    assert out["flops_per_target"] >= 2 * block_weights * tokens / targets
    assert out["flops_per_target"] <= 6 * (block_weights + 2 * backend.model.lm_head.weight.numel()) * tokens / targets
    assert matmul_rate(torch.float32, torch.device("cpu"), size=256, repeats=2) > 0
