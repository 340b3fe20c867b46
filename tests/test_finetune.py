"""The LoRA fine-tuned LLM ranker: windows hold training films only and every title in them is
a target exactly once, only the adapters move, the training loss falls, a candidate's score is
the log-probability its line has under the training loss, the adapters reload to identical
scores, and a list- or completion-format ranker cannot have a position bias."""

from __future__ import annotations

import contextlib
import copy

import numpy as np
import pytest
import torch

from recnotes.models.llm import HFBackend, LLMRanker, item_titles
from peft import PeftModel

from recnotes.models.llm.finetune import (FineTunedLLMRanker, LoRASettings, _quiet_peft, take_windows, training_windows,
                                         with_adapters)
from recnotes.models.llm.prompts import LIST_HEADER, list_prompt

torch.set_num_threads(1)


def test_windows_hold_training_films_only_each_once(split):
    windows = training_windows(split, window=20, seed=0)
    assert all(1 <= len(w) <= 20 for w in windows)
    # every training film of every user is in exactly one window: the windows' multiset of
    # (user's sequence position) equals the training sequences', found by brute force
    from collections import Counter

    want = Counter(int(x) for seq in split.train for x in seq)
    got = Counter(int(x) for w in windows for x in w)
    assert got == want and sum(len(w) for w in windows) == sum(len(seq) for seq in split.train)
    # each window is a run of consecutive films of one user's training sequence (brute force:
    # every user's sequence cut by hand), and none holds that user's validation or test film
    from collections import Counter as Multiset

    pieces = Multiset()
    for u, seq in enumerate(split.train):
        for i in range(0, len(seq), 20):
            piece = tuple(int(x) for x in seq[i:i + 20])
            assert int(split.valid[u]) not in piece and int(split.test[u]) not in piece
            pieces[piece] += 1
    assert Multiset(tuple(int(x) for x in w) for w in windows) == pieces
    again = training_windows(split, window=20, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(windows, again))  # seeded
    other = training_windows(split, window=20, seed=1)
    assert not all(np.array_equal(a, b) for a, b in zip(windows[:50], other[:50]))
    taken = take_windows(windows, 1000)
    assert sum(len(w) for w in taken) >= 1000 > sum(len(w) for w in taken[:-1])


def test_fine_tuning_moves_only_the_adapters_and_lowers_the_loss(split, backend):
    titles = item_titles(split.data)
    settings = LoRASettings(window=8, n_targets=64, keep=(64,), batch_size=2, layers=2, lr=5e-3, warmup_steps=1)
    ranker = FineTunedLLMRanker(backend, titles, settings)
    model = ranker.backend.model
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    windows = take_windows(training_windows(split, settings.window, settings.seed), settings.n_targets)
    batch = [ranker._tokens(w) for w in windows]
    with torch.no_grad():
        loss_before = float(ranker._loss(batch))
    ranker.fit(split, progress=False)
    with torch.no_grad():
        loss_after = float(ranker._loss(batch))
    assert loss_after < loss_before - 0.05
    assert ranker.targets_seen == sum(len(w) for w in windows) >= 64
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed and all("lora_" in n for n in changed)
    n_layers = model.config.num_hidden_layers
    assert all(any(f"layers.{i}." in n for i in range(n_layers - 2, n_layers)) for n in changed)
    # the zero-shot backend passed in is untouched
    assert not any("lora_" in n for n, _ in backend.model.named_parameters())


def test_a_candidates_score_is_its_lines_log_probability_under_the_training_loss(split, backend):
    """Training and scoring read the same tokens: the ranker's summed score of film ``w[k]``
    after the history ``w[:k]`` equals line ``k``'s log-probability in the training pass, and
    the list prompt's tokens are the training window's header and lines."""
    titles = item_titles(split.data)
    settings = LoRASettings(window=6, n_targets=12, keep=(12,), batch_size=2, layers=1, lr=5e-2, warmup_steps=1)
    tuned = FineTunedLLMRanker(backend, titles, settings, reduce="sum").fit(split, progress=False)
    window = [int(x) for x in split.train[5][:6]]
    header, lines = tuned._tokens(window)
    for k in (1, 3, 5):
        prompt = tuned.prompt(window[:k], [window[k]])
        assert prompt == list_prompt([titles[i] for i in window[:k]])
        assert tuned.backend.prompt_ids(prompt) == header + [t for line in lines[:k] for t in line]
    training = tuned.line_logprobs(window)
    scored = [float(tuned.score_candidates([window[:k]], np.array([[window[k]]]))[0, 0]) for k in range(1, 6)]
    assert np.allclose(scored, training[1:], atol=1e-3), (scored, training[1:])
    # the mean is the sum over the line's tokens
    mean = LLMRanker(tuned.backend, titles, template="list", max_history=5).score_candidates(
        [window[:3]], np.array([[window[3]]]))
    assert np.isclose(float(mean[0, 0]), training[3] / len(lines[3]), atol=1e-4)


def test_rank_objective_is_a_softmax_of_the_rankers_scores_against_sampled_lines(split, backend):
    """The rank loss of a window equals, by hand, the cross-entropy of a softmax over the scores
    that the ranker (the packed scorer: another code path) gives the true film and the sampled
    ones after the same history; its LM half equals the plain LM loss; and training on it moves
    the true film up against negatives the run never drew."""
    from recnotes.models.llm.finetune import _user_windows, sample_negatives

    titles = item_titles(split.data)
    settings = LoRASettings(window=6, n_targets=48, keep=(48,), batch_size=2, layers=2, lr=2e-2,
                            warmup_steps=1, objective="lm+rank", negatives=3)
    tuned = FineTunedLLMRanker(backend, titles, settings)
    user = 7
    window = [int(x) for x in split.train[user][:6]]
    films = sample_negatives(np.random.default_rng(0), split.n_items, np.asarray(split.train[user]), (6, 3))
    assert not set(films.ravel()) & set(int(x) for x in split.train[user])
    assert all(len(set(row)) == 3 for row in films)
    negs = [tuned.backend.continuation_ids([titles[int(i)] + "\n" for i in row]) for row in films]
    with torch.no_grad():
        lm, rank = tuned._rank_forward([tuned._tokens(window)], [negs])
        plain = tuned._forward([tuned._tokens(window)])[0].mean()
    assert abs(float(lm) - float(plain)) < 1e-4
    # reference: each line after its history, scored by the ranker (mean log-probability per
    # token); the first line's history is empty (the header alone)
    ref = []
    for k in range(1, 6):
        scores = tuned.score_candidates([window[:k]], np.array([[window[k], *films[k]]])).double()[0]
        ref.append(float(torch.logsumexp(scores, 0) - scores[0]))
    header, lines = tuned._tokens(window)
    first = tuned.backend.score_batch([LIST_HEADER], [[titles[window[0]] + "\n"] + [titles[int(i)] + "\n" for i in films[0]]],
                                      reduce="mean")[0]
    first = torch.as_tensor(np.asarray(first, dtype=float))
    ref.insert(0, float(torch.logsumexp(first, 0) - first[0]))
    assert abs(float(rank) - np.mean(ref)) < 1e-3, (float(rank), np.mean(ref))
    # training on it ranks held-out draws lower than the true films (on the windows it saw)
    owned = _user_windows(split, 6, 0)[:4]  # the first windows of the run: users and films

    def margin(r):  # true film's score minus held-out draws' mean, after each window's history
        probe, out = np.random.default_rng(99), []
        for u, w in owned:
            neg = sample_negatives(probe, split.n_items, np.asarray(split.train[u]), (1, 5))[0]
            s = r.score_candidates([list(w[:-1])], np.array([[int(w[-1]), *neg]]))[0]
            out.append(float(s[0] - s[1:].mean()))
        return float(np.mean(out))
    before = margin(tuned)
    tuned.fit(split, progress=False)
    after = margin(tuned)
    assert after > before, (before, after)


def test_adapters_reload_to_identical_scores_and_resume(split, backend, tmp_path):
    titles = item_titles(split.data)
    settings = LoRASettings(window=5, n_targets=20, keep=(10, 20), batch_size=2, layers=1, lr=5e-3,
                            warmup_steps=1, checkpoint_every=1)
    tuned = FineTunedLLMRanker(backend, titles, settings).fit(split, checkpoint_dir=tmp_path, progress=False)
    for k in (10, 20):  # kept in peft's format
        assert {p.name for p in (tmp_path / f"adapters-{k}").iterdir()} == {"adapter_config.json",
                                                                            "adapter_model.safetensors"}
    assert tuned.history[-1]["targets"] >= 20
    hist, cands = [split.histories("test")[3]], np.array([[1, 50, 100, 181, 258]])
    want = tuned.score_candidates(hist, cands)
    with _quiet_peft():  # loaded by peft itself, adapters kept apart
        loaded = PeftModel.from_pretrained(copy.deepcopy(backend.model), str(tmp_path / "adapters-20")).eval()
    fresh = LLMRanker(HFBackend(loaded, backend.tokenizer, name=backend.name), titles, template="list", max_history=4)
    assert torch.allclose(fresh.score_candidates(hist, cands), want, atol=1e-6)
    served = LLMRanker(with_adapters(backend, tmp_path / "adapters-20"), titles, template="list", max_history=4)
    assert torch.allclose(served.score_candidates(hist, cands), want, atol=1e-4)  # merged by peft
    zero = LLMRanker(backend, titles, template="list", max_history=4).score_candidates(hist, cands)
    assert not torch.allclose(zero, want, atol=1e-3)  # the adapters changed something
    # a run interrupted after its checkpoint resumes to the same adapters
    again = FineTunedLLMRanker(backend, titles, settings).fit(split, checkpoint_dir=tmp_path, progress=False)
    assert torch.allclose(again.score_candidates(hist, cands), want, atol=1e-6)


@pytest.mark.parametrize("template", ["completion", "list"])
def test_text_prompt_scores_do_not_depend_on_the_candidates_order(split, backend, template):
    ranker = LLMRanker(backend, item_titles(split.data), template=template)
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
    settings = LoRASettings(window=5, n_targets=10, keep=(10,), batch_size=2, layers=1, lr=5e-2, warmup_steps=1)
    tuned = FineTunedLLMRanker(backend, titles, settings).fit(split, progress=False)
    zero = LLMRanker(backend, titles, template="list", max_history=4)
    hists = [split.histories("test")[u] for u in (3, 9)]
    cands = np.array([[1, 50, 100, 181], [7, 12, 300, 258]])
    # the independent reference: every candidate with its own full prompt, no sharing
    want = {name: LLMRanker(r.backend, titles, template="list", max_history=4, scorer="naive").score_candidates(hists, cands)
            for name, r in (("zero", zero), ("tuned", tuned))}
    shared = LowerLayers(backend.model.config.num_hidden_layers - settings.layers)
    got = {"zero": zero.score_candidates(hists, cands, lower=shared),
           "tuned": tuned.score_candidates(hists, cands, lower=shared)}
    assert shared.misses >= 1 and shared.hits == shared.misses  # the tuned model ran its top block only
    for name in want:
        assert torch.allclose(got[name], want[name], atol=1e-4), name
    assert not torch.allclose(got["zero"], got["tuned"], atol=1e-3)
    # a model whose bottom blocks differ cannot use the stored states
    other = HFBackend(copy.deepcopy(backend.model), backend.tokenizer, name="other")
    with torch.no_grad():
        other.model.get_decoder().layers[0].mlp.down_proj.weight.mul_(1.01)
    with pytest.raises(ValueError, match="bottom blocks differ"):
        LLMRanker(other, titles, template="list", max_history=4).score_candidates(hists, cands, lower=shared)


def test_merged_adapters_score_as_the_adapters_do(split, backend):
    """Folding the adapters into the weights with peft's merge_and_unload (how chapter 6 scores)
    gives the scores the adapter layers give: to float32 rounding in float32, within bf16's own
    size in bf16; the merged model has no adapter layers, and the ranker keeps its own."""
    titles = item_titles(split.data)
    settings = LoRASettings(window=6, n_targets=24, keep=(24,), batch_size=2, layers=2, lr=5e-2, warmup_steps=1)
    tuned = FineTunedLLMRanker(backend, titles, settings).fit(split, progress=False)
    hist = [split.histories("test")[u] for u in (3, 7)]
    cands = np.array([[1, 50, 100, 181, 258], [7, 12, 300, 313, 600]])
    unmerged = tuned.score_candidates(hist, cands)
    zero = LLMRanker(backend, titles, template="list", max_history=5).score_candidates(hist, cands)
    assert not torch.allclose(unmerged, zero, atol=1e-3)  # the adapters matter here
    half = copy.deepcopy(tuned)
    half.backend.model = half.backend.model.to(torch.bfloat16)
    for name, p in half.backend.model.named_parameters():  # adapters stay float32, as in training
        if "lora_" in name:
            p.data = p.data.float()
    half_unmerged = half.score_candidates(hist, cands)
    merged = tuned.merged()
    assert torch.allclose(merged.score_candidates(hist, cands), unmerged, atol=1e-4)
    assert not any("lora" in n for n, _ in merged.backend.model.named_parameters())
    assert any("lora" in n for n, _ in tuned.backend.model.named_parameters())
    assert torch.allclose(tuned.score_candidates(hist, cands), unmerged, atol=1e-6)
    assert torch.allclose(half.merged().score_candidates(hist, cands), half_unmerged, atol=0.1)


def test_bf16_training_applies_the_adapters_in_bf16_with_the_same_loss(split, backend):
    """With bf16 base weights the loss is computed under autocast (adapters applied in bf16):
    it is the loss of the float32 adapter path to within bf16's rounding, and it trains."""
    titles = item_titles(split.data)
    settings = LoRASettings(window=6, n_targets=24, keep=(24,), batch_size=2, layers=2, lr=5e-2, warmup_steps=1)
    tuned = FineTunedLLMRanker(backend, titles, settings)
    tuned.backend.model = tuned.backend.model.to(torch.bfloat16)
    for name, p in tuned.backend.model.named_parameters():
        if "lora_" in name:
            p.data = p.data.float()
        if "lora_B" in name:  # non-zero adapters, so that the two paths differ in what they compute
            torch.nn.init.normal_(p, std=0.05)
    batch = [tuned._tokens(w) for w in take_windows(training_windows(split, 6, 0), 24)]
    with torch.no_grad():
        fast = float(tuned._loss(batch))
        tuned._compute = lambda: contextlib.nullcontext()  # noqa: E731 - peft's float32 path
        plain = float(tuned._loss(batch))
    assert abs(fast - plain) < 0.02 * abs(plain), (fast, plain)


@pytest.mark.parametrize("objective", ["lm", "rank"])
def test_micro_batches_accumulate_the_whole_batchs_gradient(split, backend, objective):
    """A step in passes of one window gives the gradient of the whole batch in one pass (the
    loss is a mean over line tokens, or over lines for the rank loss: each pass weighs by its share)."""
    titles = item_titles(split.data)
    settings = LoRASettings(window=5, n_targets=15, keep=(15,), batch_size=3, layers=1, objective=objective,
                            negatives=2)
    grads = {}
    for micro in (None, 1):
        ranker = FineTunedLLMRanker(backend, titles, settings, micro_batch=micro)
        with torch.no_grad():  # adapters that are not zero, the same in both runs
            for n, p in ranker.backend.model.named_parameters():
                if "lora_B" in n:
                    p.copy_(torch.linspace(-0.01, 0.01, p.numel()).reshape(p.shape))
        windows = take_windows(training_windows(split, 5, 0), 15)[:3]
        rng = np.random.default_rng(0)
        negatives = [ranker._negatives(split, 7, w, rng) for w in windows] if objective == "rank" else None
        loss = ranker._step_loss([ranker._tokens(w) for w in windows], negatives)
        grads[micro] = (float(loss.detach()), {n: p.grad.clone() for n, p in ranker.backend.model.named_parameters()
                                      if p.requires_grad})
    assert grads[1][0] == pytest.approx(grads[None][0], rel=1e-5)
    for n, g in grads[None][1].items():
        torch.testing.assert_close(grads[1][1][n], g, rtol=1e-4, atol=1e-7)


def test_float16_weights_train_with_a_scaled_loss_as_float32_does(split, backend):
    """Base weights in float16 (the inference dtype of CUDA cards without native bf16) train the
    float32 adapters under float16 autocast with a loss scaler: the losses follow float32's to
    within float16's rounding, and the adapters move as they do."""
    titles = item_titles(split.data)
    settings = LoRASettings(window=6, n_targets=24, keep=(24,), batch_size=4, layers=2, lr=5e-2, warmup_steps=1)
    runs = {}
    for dtype in (torch.float32, torch.float16):
        tuned = FineTunedLLMRanker(HFBackend(copy.deepcopy(backend.model), backend.tokenizer, name="t",
                                             device=torch.device("cpu")), titles, settings)
        tuned.backend.model = tuned.backend.model.to(dtype)
        for name, p in tuned.backend.model.named_parameters():
            if "lora_" in name:
                p.data = p.data.float()
        tuned.fit(split, progress=False)
        runs[dtype] = tuned
    half, full = runs[torch.float16], runs[torch.float32]
    assert half._scaler.is_enabled() and not full._scaler.is_enabled()
    for a, b in zip(half.history, full.history):
        assert a["loss"] == pytest.approx(b["loss"], rel=0.02)
    moved = {k: v for k, v in half.adapter_state().items() if "lora_B" in k}
    ref = full.adapter_state()
    assert all(v.abs().max() > 0 for v in moved.values())  # lora_B starts at zero
    for k, v in moved.items():
        cos = torch.nn.functional.cosine_similarity(v.flatten(), ref[k].flatten(), dim=0)
        assert cos > 0.9, (k, float(cos))
