"""The LoRA fine-tuned LLM ranker: only the adapters move, the training loss falls, the
adapters reload to identical scores, training examples come from training sequences only,
and a completion-format ranker cannot have a position bias."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from recnotes.data import load_movielens
from recnotes.data.splits import leave_one_out
from recnotes.models.llm import HFBackend, LLMRanker, item_titles
from recnotes.models.llm.finetune import FineTunedLLMRanker, LoRASettings, training_examples

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def split():
    return leave_one_out(load_movielens())


@pytest.fixture(scope="module")
def backend():
    return HFBackend.from_pretrained(device="cpu", dtype=torch.float32)


def test_examples_come_from_training_sequences_only(split):
    examples = training_examples(split, 300, max_history=5, seed=0)
    train_pairs = {(u, int(x)) for u, seq in enumerate(split.train) for x in seq}
    held_out = set(zip(range(split.n_users), split.valid.tolist())) | set(zip(range(split.n_users), split.test.tolist()))
    for history, target in examples:
        assert 1 <= len(history) <= 5
        owners = {u for u, seq in enumerate(split.train)
                  if any(list(seq[i:i + len(history) + 1]) == [*history.tolist(), target]
                         for i in range(len(seq) - len(history)))}
        assert owners, "the example is a window of some user's training sequence"
        assert any((u, target) in train_pairs and (u, target) not in held_out for u in owners)
    again = training_examples(split, 300, max_history=5, seed=0)
    assert all(np.array_equal(a[0], b[0]) and a[1] == b[1] for a, b in zip(examples, again))  # seeded
    first = training_examples(split, 64, max_history=5, seed=0)
    assert all(np.array_equal(a[0], b[0]) and a[1] == b[1] for a, b in zip(first, examples))  # nested sizes


def test_fine_tuning_moves_only_the_adapters_and_lowers_the_loss(split, backend):
    titles = item_titles(split.data)
    settings = LoRASettings(n_examples=24, keep=(24,), batch_size=8, layers=2, lr=5e-3, warmup_steps=1)
    ranker = FineTunedLLMRanker(backend, titles, settings)
    model = ranker.backend.model
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    examples = training_examples(split, 24, settings.max_history, settings.seed)
    batch = [ranker._tokens(h, t) for h, t in examples]
    with torch.no_grad():
        loss_before = float(ranker._loss(batch))
    ranker.fit(split, progress=False)
    with torch.no_grad():
        loss_after = float(ranker._loss(batch))
    assert loss_after < loss_before - 0.05
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed and all("lora_" in n for n in changed)
    n_layers = model.config.num_hidden_layers
    assert all(any(f"layers.{i}." in n for i in range(n_layers - 2, n_layers)) for n in changed)
    # the zero-shot backend passed in is untouched
    assert not any("lora_" in n for n, _ in backend.model.named_parameters())


def test_adapters_reload_to_identical_scores_and_resume(split, backend, tmp_path):
    titles = item_titles(split.data)
    settings = LoRASettings(n_examples=8, keep=(4, 8), batch_size=4, layers=1, lr=5e-3, warmup_steps=1,
                            checkpoint_every=1)
    tuned = FineTunedLLMRanker(backend, titles, settings).fit(split, checkpoint_dir=tmp_path, progress=False)
    assert (tmp_path / "adapter-4.safetensors").is_file() and (tmp_path / "adapter-8.safetensors").is_file()
    hist, cands = [split.histories("test")[3]], np.array([[1, 50, 100, 181, 258]])
    want = tuned.score_candidates(hist, cands)
    fresh = FineTunedLLMRanker(backend, titles, settings).load_adapters(tmp_path / "adapter-8.safetensors")
    assert torch.allclose(fresh.score_candidates(hist, cands), want, atol=1e-6)
    zero = LLMRanker(backend, titles, template="completion").score_candidates(hist, cands)
    assert not torch.allclose(zero, want, atol=1e-3)  # the adapters changed something
    # a run interrupted after its checkpoint resumes to the same adapters
    again = FineTunedLLMRanker(backend, titles, settings).fit(split, checkpoint_dir=tmp_path, progress=False)
    assert torch.allclose(again.score_candidates(hist, cands), want, atol=1e-6)


def test_completion_scores_do_not_depend_on_the_candidates_order(split, backend):
    ranker = LLMRanker(backend, item_titles(split.data), template="completion")
    hist = split.histories("test")[7]
    cands = [1, 50, 100, 181, 258, 288]
    scores = ranker.score_user(hist, cands, order=np.arange(6))
    reversed_ = ranker.score_user(hist, cands, order=np.arange(6)[::-1])
    assert np.allclose(scores, reversed_, atol=1e-6)  # a candidate's score is its own


def test_cited_numbers_carry_their_source():
    from recnotes.report.cited import LLMRANK, cited_frame

    assert LLMRANK
    for row in LLMRANK:
        assert row["source"] and "LLMRank" in row["source"] and row["reference"] == "hou2024llmrank"
        assert row["dataset"] == "ml-1m" and 0 < row["value"] < 1
    frame = cited_frame(10)
    assert {"Alpaca-7B", "Vicuna-13B", "LLaMA-2-70B-Chat", "GPT-4", "Pop", "SASRec"} <= set(frame["model"])
    assert frame.set_index("model").loc["SASRec", "NDCG@10"] > frame.set_index("model").loc["Pop", "NDCG@10"]


def test_models_equal_below_their_adapters_share_the_bottom_blocks(split, backend):
    from recnotes.models.llm.likelihood import LowerLayers

    titles = item_titles(split.data)
    settings = LoRASettings(n_examples=4, keep=(4,), batch_size=4, layers=1, lr=5e-2, warmup_steps=1)
    tuned = FineTunedLLMRanker(backend, titles, settings).fit(split, progress=False)
    zero = LLMRanker(backend, titles, template="completion")
    hists = [split.histories("test")[u] for u in (3, 9)]
    cands = np.array([[1, 50, 100, 181], [7, 12, 300, 258]])
    # the independent reference: every candidate with its own full prompt, no sharing
    want = {name: LLMRanker(r.backend, titles, template="completion", scorer="naive").score_candidates(hists, cands)
            for name, r in (("zero", zero), ("tuned", tuned))}
    shared = LowerLayers(backend.model.config.num_hidden_layers - settings.layers)
    try:
        zero.backend.lower = tuned.backend.lower = shared
        got = {"zero": zero.score_candidates(hists, cands), "tuned": tuned.score_candidates(hists, cands)}
    finally:
        zero.backend.lower = tuned.backend.lower = None
    assert shared.misses >= 1 and shared.hits == shared.misses  # the tuned model ran its top block only
    for name in want:
        assert torch.allclose(got[name], want[name], atol=1e-4), name
    assert not torch.allclose(got["zero"], got["tuned"], atol=1e-3)
    # a model whose bottom blocks differ cannot use the stored states
    other = HFBackend(copy.deepcopy(backend.model), backend.tokenizer, name="other")
    with torch.no_grad():
        other.model.get_decoder().layers[0].mlp.down_proj.weight.mul_(1.01)
    other.lower = shared
    with pytest.raises(ValueError, match="bottom blocks differ"):
        LLMRanker(other, titles, template="completion").score_candidates(hists, cands)
