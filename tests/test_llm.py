"""The LLM ranker: offline model loading, KV-cache likelihoods against a full-prompt
reference, prompt templates, list-wise answer parsing, and the bias probes."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recnotes.data import load_movielens
from recnotes.models.llm import (Completion, HFBackend, LLMBackend, LLMBackendError,
                                 LLMRanker, build_messages, item_titles, parse_ranking,
                                 popularity_bias, position_bias, position_summary, watched_first)
from recnotes.models.llm.likelihood import decoder_and_head, head_logprobs, score_naive, score_packed, score_shared_prefix
from recnotes.models.llm.prompts import CHAT_TEMPLATES, build_prompt, completion_prompt, continuation_text

torch.set_num_threads(1)


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def titles() -> list[str]:
    return item_titles(load_movielens())


def reference_scores(model, prefix: list[int], conts: list[list[int]]) -> np.ndarray:
    """Mean log-probability of each continuation from one plain forward pass over
    ``prefix + continuation`` (no cache, no padding, float64 softmax)."""
    out = []
    for cont in conts:
        ids = torch.tensor([prefix + cont])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0].double()
        logp = torch.log_softmax(logits, dim=-1)
        p = len(prefix)
        out.append(np.mean([float(logp[p - 1 + k, tok]) for k, tok in enumerate(cont)]))
    return np.asarray(out)


class ScriptedBackend(LLMBackend):
    """A backend that answers every chat with a fixed text (no model involved)."""

    name = "scripted"

    def __init__(self, answer: str) -> None:
        super().__init__()
        self.answer, self.seen = answer, []

    def chat(self, messages, max_new_tokens=64, temperature=0.0) -> Completion:
        self.seen.append(messages)
        self.usage.add(100, 7)
        return Completion(self.answer, 100, 7)


# -------------------------------------------------------------- the model
def test_bf16_ranks_like_float32(backend, titles):
    """The default on a bf16-capable CPU changes scores only slightly: same order, nearly."""
    bf16 = HFBackend(copy.deepcopy(backend.model).to(torch.bfloat16), backend.tokenizer, name="bf16",
                     device=torch.device("cpu"))
    hist, cands = np.array([1, 50, 100, 181]), np.arange(200, 210)

    def scores(b):
        ranker = LLMRanker(b, titles, method="likelihood", shuffle=False)
        return ranker.score_candidates([hist], cands[None]).float().numpy()[0]

    low, full = scores(bf16), scores(backend)
    assert np.abs(low - full).max() < 0.15
    from scipy.stats import spearmanr

    assert spearmanr(low, full)[0] > 0.9


def test_offline_default_is_the_pinned_smollm2(backend):
    n_params = sum(p.numel() for p in backend.model.parameters())
    assert 130e6 < n_params < 140e6  # SmolLM2-135M
    assert next(backend.model.parameters()).dtype == torch.float32  # as asked
    ids = backend.prompt_ids([{"role": "user", "content": "Hello"}])
    text = backend.tokenizer.decode(ids)
    assert text.rstrip().endswith("assistant")  # the prompt opens the assistant's turn
    before = backend.usage.completion_tokens
    answer = backend.chat([{"role": "user", "content": "Name one movie."}], max_new_tokens=8)
    assert 1 <= answer.completion_tokens <= 8 and answer.text.strip()
    assert backend.usage.completion_tokens - before == answer.completion_tokens


def test_base_model_without_chat_template_gets_a_plain_prompt(backend):
    tokenizer = copy.deepcopy(backend.tokenizer)
    tokenizer.chat_template = None
    plain = HFBackend(backend.model, tokenizer, name="plain")
    text = tokenizer.decode(plain.prompt_ids([{"role": "user", "content": "Hello"}]))
    assert text.endswith("User: Hello\n\nAssistant:")


def test_model_not_cached_offline_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("RECNOTES_ONLINE", raising=False)
    with pytest.raises(LLMBackendError, match="not available offline") as err:
        HFBackend.from_pretrained("recnotes-test/no-such-model-here", device="cpu")
    assert "online=True" in str(err.value)


# --------------------------------------------------------- likelihood scoring
@pytest.mark.parametrize("scorer", ["packed", "shared", "naive"])
@pytest.mark.parametrize("template,end_token", [("sequential", False), ("completion", True), ("list", False)])
def test_every_scorer_matches_the_full_prompt_reference(backend, titles, scorer, template, end_token):
    history = [titles[i] for i in (50, 181, 100)]
    cands = [titles[i] for i in (1, 12, 64, 98, 127, 1300)]  # titles of different token lengths
    prompt = build_prompt(history, cands, template, "likelihood")
    texts = [continuation_text(c, template) for c in cands]
    prefix = backend.prompt_ids(prompt)
    conts = backend.continuation_ids(texts, end_token)
    assert len({len(c) for c in conts}) > 2, "the test needs candidates of several lengths"
    assert all((c[-1] == backend.tokenizer.eos_token_id) == end_token for c in conts)
    expected = reference_scores(backend.model, prefix, conts)
    got = backend.score_continuations(prompt, texts, scorer, end_token)
    assert np.abs(got - expected).max() <= 1e-4
    # a continuation's score does not depend on what else is scored with it
    alone = backend.score_continuations(prompt, texts[:1], scorer, end_token)
    assert abs(alone[0] - expected[0]) <= 1e-4


def test_packed_batch_of_users_equals_the_naive_scorer(backend, titles):
    """Several users of different prompt and title lengths in one packed pass: each user's
    scores equal the naive path's (one full prompt per candidate), to 1e-4."""
    users = [([50, 181, 100], [1, 12, 64]), ([7], [98, 127, 1300, 2, 3]), (list(range(20, 32)), [400, 401])]
    prompts = [completion_prompt([titles[i] for i in h]) for h, _ in users]
    conts = [[" " + titles[i] for i in c] for _, c in users]
    packed = backend.score_batch(prompts, conts, "packed", end_token=True)
    naive = backend.score_batch(prompts, conts, "naive", end_token=True)
    assert [len(p) for p in packed] == [3, 5, 2]
    for got, want in zip(packed, naive):
        assert np.abs(got - want).max() <= 1e-4
    with pytest.raises(ValueError, match="empty"):
        score_packed(backend.model, [([], [[1]])], torch.device("cpu"))
    with pytest.raises(ValueError, match="scorer"):
        backend.score_batch(prompts, conts, "fast")


def _float64_logprobs(weight, bias, states, targets):
    logits = states.double() @ weight.double().T + (0 if bias is None else bias.double())
    return torch.log_softmax(logits, dim=-1).gather(1, targets[:, None])[:, 0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("with_bias", [False, True])
def test_blockwise_head_logprobs_and_gradient_against_float64(dtype, with_bias):
    """The output layer over blocks of the vocabulary (a last block shorter than the others, a
    bias or none) gives each row's log-probability of its target as a float64 log-softmax does,
    and a gradient to the states as close to float64's as the plain path's."""
    gen = torch.Generator().manual_seed(3)
    head = torch.nn.Linear(48, 1000, bias=with_bias).to(dtype).requires_grad_(False)
    with torch.no_grad():
        head.weight.copy_(torch.randn(1000, 48, generator=gen))
    states = torch.randn(37, 48, generator=gen).to(dtype)
    targets = torch.randint(0, 1000, (37,), generator=gen)
    exact = _float64_logprobs(head.weight, head.bias, states, targets)
    with torch.no_grad():
        got = head_logprobs(head, states, targets, columns=96)
        plain = head_logprobs(head, states, targets, columns=0)
    assert got.dtype == torch.float32
    if dtype == torch.float32:
        assert torch.allclose(got.double(), exact, atol=1e-4, rtol=0)
    else:  # bf16 logits carry ~3 significant digits: as far from float64 as the plain path's
        assert (got.double() - exact).abs().max() <= 1.5 * (plain.double() - exact).abs().max() + 1e-5
    weight = torch.rand(37, generator=gen, dtype=torch.float64)
    grads = {}
    for columns in (96, 0):  # blocks, then the plain path
        x = states.clone().requires_grad_(True)
        (head_logprobs(head, x, targets, columns=columns).double() * weight).sum().backward()
        grads[columns] = x.grad.double()
    x = states.double().requires_grad_(True)
    (_float64_logprobs(head.weight, head.bias, x, targets) * weight).sum().backward()
    err = {c: float((g - x.grad).norm() / x.grad.norm()) for c, g in grads.items()}
    assert err[96] <= max(2 * err[0], 1e-5), err
    if with_bias:  # a head whose bias trains takes the plain path: the bias gets its gradient
        head.bias.requires_grad_(True)
        head_logprobs(head, states.clone().requires_grad_(True), targets, columns=96).sum().backward()
        assert head.bias.grad is not None and head.bias.grad.abs().sum() > 0


def test_blockwise_head_logprobs_on_the_pinned_model(backend):
    """On the pinned model's states and its 49,152-word output layer, the blocked path equals
    log_softmax(head(states)) to float32 rounding."""
    decoder, head = decoder_and_head(backend.model)
    ids = backend.tokenizer("Toy Story (1995)\nHeat (1995)\nCasino (1995)\n", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        states = decoder(input_ids=ids).last_hidden_state[0]
        targets = torch.roll(ids[0], -1)
        plain = torch.log_softmax(head(states).float(), dim=-1).gather(1, targets[:, None])[:, 0]
        assert torch.allclose(head_logprobs(head, states, targets), plain, atol=2e-5, rtol=0)


def test_shared_prefix_counts_prompt_once(backend):
    messages = [{"role": "user", "content": "Pick a film."}]
    n_prompt = len(backend.prompt_ids(messages))
    conts = ["Heat (1995)", "Fargo (1996)", "Alien (1979)"]
    n_cont = sum(len(c) for c in backend.continuation_ids(conts))
    u0 = backend.usage.prompt_tokens, backend.usage.completion_tokens
    backend.score_continuations(messages, conts)
    assert backend.usage.prompt_tokens - u0[0] == n_prompt
    assert backend.usage.completion_tokens - u0[1] == n_cont
    with pytest.raises(ValueError, match="empty"):
        score_shared_prefix(backend.model, [], [[1]], torch.device("cpu"))
    with pytest.raises(ValueError, match="empty"):
        score_naive(backend.model, [], [[1]], torch.device("cpu"))


def test_ranker_aligns_scores_with_candidates(backend, titles):
    ranker = LLMRanker(backend, titles, method="likelihood", template="recency", max_history=3)
    assert ranker.name == "LLMRanker[likelihood,recency]"
    history, cands = [7, 50, 181, 100], [1, 12, 64, 98]
    order = np.array([2, 0, 3, 1])
    scores = ranker.score_user(history, cands, order=order)
    messages = ranker.messages(history, cands, order)
    shown = messages[-1]["content"].split("candidate")[0]
    assert titles[7] not in shown and titles[50] in shown  # only the last 3 items are shown
    prefix = backend.prompt_ids(messages)
    expected = reference_scores(backend.model, prefix,
                                backend.continuation_ids([titles[c] for c in cands], end_token=True))
    assert np.abs(scores - expected).max() <= 1e-4  # score k belongs to candidate k
    batch = ranker.score_candidates([np.array(history), np.array([0, 0, 5, 9])],
                                    np.array([cands, [3, 4, 6, 8]]))
    assert batch.shape == (2, 4) and torch.isfinite(batch).all()
    assert ranker.stats.users == 3 and ranker.stats.tokens_per_user > 0
    # the batched path gives each user what the one-user path gives
    one = ranker.score_user(history, cands, order=ranker.prompt_order(history, cands))
    assert np.abs(batch[0].numpy() - one).max() <= 1e-4


def test_completion_template_is_plain_text_with_the_last_films(backend, titles):
    ranker = LLMRanker(backend, titles, template="completion", max_history=2)
    assert ranker.name == "LLMRanker[likelihood,completion]"
    prompt = ranker.prompt([7, 50, 181], [1, 12])
    assert prompt == f"Films I watched, oldest first:\n{titles[50]}\n{titles[181]}\nThe next film I watched:"
    assert ranker.continuations([1, 12], [1, 0]) == [" " + titles[12], " " + titles[1]]
    ids = backend.prompt_ids(prompt)
    assert backend.tokenizer.decode(ids) == prompt  # no chat template around it
    with pytest.raises(ValueError, match="list-wise"):
        LLMRanker(backend, titles, method="listwise", template="completion")
    with pytest.raises(ValueError, match="likelihood task only"):
        build_prompt(["A"], ["B"], "completion", "listwise")


def test_list_template_is_the_list_alone_and_a_candidate_its_next_line(backend, titles):
    ranker = LLMRanker(backend, titles, template="list", max_history=2)
    assert ranker.name == "LLMRanker[likelihood,list]" and ranker.end_token is False
    prompt = ranker.prompt([7, 50, 181], [1, 12])
    assert prompt == f"Films I watched, oldest first:\n{titles[50]}\n{titles[181]}\n"
    assert ranker.continuations([1, 12], [1, 0]) == [titles[12] + "\n", titles[1] + "\n"]
    assert backend.tokenizer.decode(backend.prompt_ids(prompt)) == prompt
    # the sum is the mean times the number of the line's tokens
    mean = ranker.score_user([7, 50, 181], [1, 12], order=[0, 1])
    total = LLMRanker(backend, titles, template="list", max_history=2, reduce="sum").score_user(
        [7, 50, 181], [1, 12], order=[0, 1])
    lengths = [len(i) for i in backend.continuation_ids([titles[1] + "\n", titles[12] + "\n"])]
    assert np.allclose(total, mean * np.array(lengths), atol=1e-4)
    with pytest.raises(ValueError, match="likelihood task only"):
        build_prompt(["A"], ["B"], "list", "listwise")
    with pytest.raises(ValueError, match="reduction"):
        LLMRanker(backend, titles, template="list", reduce="max")


def test_likelihood_needs_a_likelihood_backend(titles):
    with pytest.raises(LLMBackendError, match="listwise"):
        LLMRanker(ScriptedBackend(""), titles, method="likelihood")
    with pytest.raises(ValueError, match="template"):
        LLMRanker(ScriptedBackend(""), titles, method="listwise", template="nope")


def test_listwise_generation_on_the_real_model(backend, titles):
    ranker = LLMRanker(backend, titles, method="listwise", max_new_tokens=24, keep_answers=True)
    scores = ranker.score_candidates([np.array([1, 2, 3, 4])], np.array([[50, 100, 181, 258, 288]]))
    assert sorted(scores[0].tolist()) == [1.0, 2.0, 3.0, 4.0, 5.0]  # a full ranking, no ties
    st_ = ranker.stats
    assert st_.answers == 1 and len(st_.raw_answers) == 1 and st_.completion_tokens <= 24
    # the scores follow the model's own answer, read here without the parser: the candidate
    # whose title the answer writes first is ranked first
    cands = [50, 100, 181, 258, 288]
    answer = st_.raw_answers[0]
    where = {j: answer.find(titles[c]) for j, c in enumerate(cands) if titles[c] in answer}
    assert where, f"the pinned model (greedy) wrote no candidate's title: {answer!r}"
    first = min(where, key=where.get)
    assert scores[0, first] == 5.0, (answer, scores)


# ----------------------------------------------------------------- prompts
def test_templates_show_history_oldest_first():
    hist, cands = ["A (1990)", "B (1991)", "C (1992)"], ["X (2000)", "Y (2001)"]
    for template in CHAT_TEMPLATES:
        text = build_messages(hist, cands, template, "listwise")[-1]["content"]
        assert text.index("A (1990)") < text.index("B (1991)") < text.index("C (1992)")
        assert "[1] X (2000)" in text and "[2] Y (2001)" in text
    assert "most recently watched movie is C (1992)" in build_messages(hist, cands, "recency")[-1]["content"]
    icl = build_messages(hist, cands, "in_context")[-1]["content"]
    assert "then you should recommend C (1992) to me" in icl and "2. B (1991)" in icl
    assert "C (1992)" not in icl.split("then you should")[0]  # the demonstration's answer is held out
    with pytest.raises(ValueError, match="template"):
        build_messages(hist, cands, "chain")
    with pytest.raises(ValueError, match="build_prompt"):
        build_messages(hist, cands, "completion")
    with pytest.raises(ValueError, match="no candidates"):
        build_messages(hist, [], "sequential")


def test_ranker_shows_a_seeded_order_that_varies_between_users(titles):
    ranker = LLMRanker(ScriptedBackend("[1]"), titles, method="listwise")
    a = ranker.prompt_order([1, 2, 3], list(range(10, 30)))
    assert np.array_equal(a, ranker.prompt_order([1, 2, 3], list(range(10, 30))))
    assert not np.array_equal(a, ranker.prompt_order([1, 2, 4], list(range(10, 30))))
    assert sorted(a) == list(range(20))


# ------------------------------------------------------------- list-wise parsing
REAL_LOOKING = [  # answers of the kind SmolLM2 gives, with the candidates of the prompt
    ("[3], [1], [2]", [2, 0, 1], 0, 0),
    ("Sure! Here is my ranking: [2] > [5] > [1]", [1, 4, 0], 0, 0),
    ("1. Star Wars (1977)\n2. Heat (1995)\n3. The Matrix (1999)", [2, 1], 1, 0),
    ("1. 3\n2. 2\n3. 1\n4. 4", [2, 1, 0, 3], 0, 0),
    ("1. [4] Return of the Jedi\n2. [5] Jedi", [3, 4], 0, 0),
    ("3, 1, 2, 9, 3", [2, 0, 1], 1, 1),
    ("Return of the Jedi, Jedi, toy story", [3, 4, 0], 0, 0),
    ("1. Heat, The (1995)\n2. The (1996)\n3. The (1996)", [1], 2, 0),
    ("", [], 0, 0),
    ("I'm sorry, I cannot rank movies.", [], 0, 0),
    ("[1], [1], [0], [-2], [6]", [0], 2, 1),
]
CANDS = ["Toy Story (1995)", "Heat (1995)", "Star Wars (1977)", "Return of the Jedi (1983)",
         "Jedi (1990)"]


@pytest.mark.parametrize("text,ranked,invented,duplicates", REAL_LOOKING)
def test_parse_real_and_malformed_answers(text, ranked, invented, duplicates):
    got = parse_ranking(text, len(CANDS), CANDS)
    assert got.ranked == ranked
    assert (got.invented, got.duplicates) == (invented, duplicates)
    assert sorted(got.order) == list(range(len(CANDS)))  # always a full permutation
    assert got.order[: len(ranked)] == ranked
    rest = [i for i in range(len(CANDS)) if i not in ranked]
    assert got.order[len(ranked):] == rest  # omitted ones follow in prompt order
    assert got.missing == len(rest)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 25).flatmap(lambda n: st.tuples(st.just(n), st.permutations(range(n)))),
       st.sampled_from([", ", " > ", "\n", " "]), st.booleans())
def test_parse_reads_back_any_rendered_permutation(n_perm, sep, brackets):
    n, perm = n_perm
    text = sep.join(f"[{k + 1}]" if brackets else str(k + 1) for k in perm)
    got = parse_ranking(text, n)
    assert got.order == list(perm) and got.invented == got.duplicates == got.missing == 0


def test_listwise_scores_follow_the_answer_and_fill_the_rest(titles):
    cands = [10, 11, 12, 13, 14]
    ranker = LLMRanker(ScriptedBackend("[4], [2], [99]"), titles, method="listwise")
    order = np.array([3, 0, 4, 1, 2])  # prompt position -> candidate index
    scores = ranker.score_user([1, 2], cands, order=order)
    # prompt [4] shows candidate 1 and [2] candidate 0; then the unnamed prompt positions
    # 1, 3, 5 follow in prompt order: candidates 3, 4, 2
    assert (-scores).argsort().tolist() == [1, 0, 3, 4, 2]
    assert sorted(scores.tolist()) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert (ranker.stats.omitted, ranker.stats.invented, ranker.stats.unparsed) == (3, 1, 0)
    assert ranker.stats.prompt_tokens == 100 and ranker.stats.completion_tokens == 7


# ------------------------------------------------------------------- probes
class FirstPositionLover:
    """A ranker that scores candidates by how early the prompt shows them."""

    def score_user(self, history, candidates, order=None):
        scores = np.empty(len(candidates))
        scores[np.asarray(order)] = -np.arange(len(candidates), dtype=float)
        return scores


def test_position_bias_recovers_a_pure_position_effect():
    cands = np.arange(1, 41).reshape(2, 20)
    table = position_bias(FirstPositionLover(), [[5], [6]], cands, target_pos=[3, 17], n_orders=4)
    assert sorted(table["position"].unique()) == [0, 6, 13, 19]
    assert (table["rank"] == table["position"]).all()  # rank = where the prompt put it
    summary = position_summary(table)
    assert summary.attrs["spearman"] == pytest.approx(1.0)
    assert summary.set_index("position")["hr1"].to_dict() == {0: 1.0, 6: 0.0, 13: 0.0, 19: 0.0}


def spearman_reference(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of average ranks (ties share their mean rank)."""
    def ranks(x):
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x))
        for v in np.unique(x):
            r[x == v] = r[x == v].mean()
        return r
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def test_popularity_bias_against_a_rank_correlation_reference():
    rng = np.random.default_rng(0)
    pop = rng.integers(0, 300, size=60)
    cands = np.stack([rng.choice(np.arange(1, 60), 20, replace=False) for _ in range(8)])
    assert popularity_bias(np.log1p(pop[cands]), cands, pop).mean_spearman == pytest.approx(1.0)
    assert popularity_bias(-pop[cands].astype(float), cands, pop).mean_spearman == pytest.approx(-1.0)
    noisy = rng.normal(size=cands.shape)
    got = popularity_bias(noisy, cands, pop)
    expected = np.mean([spearman_reference(s, pop[c]) for s, c in zip(noisy, cands)])
    assert got.mean_spearman == pytest.approx(expected)
    assert got.pooled_spearman == pytest.approx(spearman_reference(noisy.ravel(), pop[cands].ravel()))


class PrefersWatched:
    """Scores an item 1 if it is in the history, else 0 (the target gets 0.5)."""

    def __init__(self, target_pos):
        self.target_pos = target_pos

    def score_candidates(self, histories, candidates):
        s = np.array([[1.0 if c in set(h) else 0.0 for c in row] for h, row in zip(histories, candidates)])
        s[np.arange(len(s)), self.target_pos] = 0.5
        return s


def test_watched_first_counts_rerecommendations():
    hist = [list(range(1, 15)), list(range(30, 50))]
    cands = np.array([np.arange(100, 120), np.arange(200, 220)])
    target = [4, 0]
    got = watched_first(PrefersWatched(target), hist, cands, target, n_watched=1, recent=10)
    assert (got.rate, got.target_first_rate, got.chance, got.n_users) == (1.0, 0.0, 0.05, 2)

    class TargetFirst:
        def score_candidates(self, histories, candidates):
            s = np.zeros(np.shape(candidates))
            s[np.arange(len(s)), target] = 1.0
            return s

    got = watched_first(TargetFirst(), hist, cands, target)
    assert (got.rate, got.target_first_rate) == (0.0, 1.0)
    with pytest.raises(ValueError, match="n_watched"):
        watched_first(TargetFirst(), hist, cands, target, n_watched=20)
