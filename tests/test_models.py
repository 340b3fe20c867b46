"""Classic baselines against dense NumPy references, and the shared model contract."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from recnotes.data import Interactions, leave_one_out
from recnotes.evaluate import evaluate_full
from recnotes.models import EASE, GPTRec, ItemKNN, LSTM, NotFittedError, Popularity, Random
from recnotes.models.base import histories_matrix
from recnotes.models.training import TrainConfig

torch.set_num_threads(1)


def random_split(n_users: int = 30, n_items: int = 12, length: int = 8, seed: int = 0):
    """A small split of random histories (items 1..n_items, no repeats per user)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        items = rng.choice(np.arange(1, n_items + 1), size=length, replace=False)
        rows += [(u, int(i), t) for t, i in enumerate(items)]
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    return leave_one_out(Interactions.from_frame(frame))


def ease_reference(x: np.ndarray, l2: float) -> np.ndarray:
    """EASE column by column: ridge regression of item j on all other items."""
    n = x.shape[1]
    b = np.zeros((n, n))
    for j in range(n):
        others = [i for i in range(n) if i != j]
        a = x[:, others]
        b[others, j] = np.linalg.solve(a.T @ a + l2 * np.eye(n - 1), a.T @ x[:, j])
    return b


def knn_reference(x: np.ndarray, k: int, shrink: float) -> np.ndarray:
    """Brute-force pruned cosine: w[j, i] = sim(j, i) if i is among j's k nearest, else 0."""
    n = x.shape[1]
    sim = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i != j:
                dot = float(x[:, i] @ x[:, j])
                sim[i, j] = dot / (np.linalg.norm(x[:, i]) * np.linalg.norm(x[:, j]) + shrink + 1e-12) if dot else 0.0
    w = np.zeros_like(sim)
    for j in range(n):
        order = sorted((c for c in range(n) if sim[j, c] != 0), key=lambda c: (-sim[j, c], c))[:k]
        w[j, order] = sim[j, order]
    return w


@pytest.mark.parametrize("l2", [0.5, 10.0])
def test_ease_matches_columnwise_ridge_reference(l2):
    split = random_split()
    model = EASE(l2=l2).fit(split)
    x = split.train_matrix("valid").toarray().astype(np.float64)
    ref = ease_reference(x, l2)
    hist = split.histories("test")
    h = histories_matrix(hist, split.n_items).toarray()
    np.testing.assert_allclose(model.score(hist).numpy(), h @ ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("k,shrink", [(3, 0.0), (5, 2.0), (100, 10.0)])
def test_itemknn_matches_brute_force_reference(k, shrink):
    split = random_split(seed=1)
    model = ItemKNN(k=k, shrink=shrink).fit(split)
    x = split.train_matrix("valid").toarray().astype(np.float64)
    w = knn_reference(x, k, shrink)
    hist = split.histories("test")
    h = histories_matrix(hist, split.n_items).toarray()
    # score of item j sums item j's similarities to the history's items
    np.testing.assert_allclose(model.score(hist).numpy(), h @ w.T, rtol=1e-5, atol=1e-6)


def test_popularity_counts_training_users():
    split = random_split()
    scores = Popularity().fit(split).score(split.histories("test")[:3]).numpy()
    counts = np.zeros(split.n_items + 1)
    for seq in split.train:
        counts[np.unique(seq)] += 1
    np.testing.assert_array_equal(scores[0, 1:], counts[1:])
    assert (scores[:, 0] < scores[:, 1:].min()).all()  # padding ranks last


def test_random_is_reproducible_and_uniform_rank():
    split = random_split()
    a = Random(seed=3).fit(split).score(split.histories("test")).numpy()
    b = Random(seed=3).fit(split).score(split.histories("test")).numpy()
    c = Random(seed=4).fit(split).score(split.histories("test")).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def small_models():
    cfg = TrainConfig(max_epochs=1, batch_size=8, patience=1)
    return [Popularity(), Random(), ItemKNN(k=5), EASE(l2=5.0),
            LSTM(embedding_dim=8, hidden=8, max_len=10, train_config=cfg),
            GPTRec(dim=8, n_layers=1, n_heads=2, max_len=10, train_config=cfg)]


@pytest.mark.parametrize("model", small_models(), ids=lambda m: m.name)
def test_contract_shape_and_padding_never_recommended(model):
    split = random_split()
    with pytest.raises(NotFittedError):
        model.score(split.histories("test")[:2])
    model.fit(split, progress=False) if hasattr(model, "build") else model.fit(split)
    hist = split.histories("test")
    scores = torch.as_tensor(model.score(hist[:7]))
    assert scores.shape == (7, split.n_items + 1)
    assert torch.isfinite(scores[:, 1:]).all()
    result = evaluate_full(model, split, stage="test", ks=(1, 5))
    assert (result.topk > 0).all()  # a full top-5 list with no padding item
    for u, top in enumerate(result.topk):
        assert not set(top) & set(hist[u])  # seen items masked


def test_score_rejects_unknown_items():
    split = random_split()
    model = EASE(l2=1.0).fit(split)
    with pytest.raises(ValueError, match="outside"):
        model.score([np.array([1, split.n_items + 5])])


def test_bad_hyperparameters_raise():
    with pytest.raises(ValueError):
        EASE(l2=0.0).fit(random_split())
    with pytest.raises(ValueError):
        ItemKNN(k=0).fit(random_split())


def test_empty_training_matrix_is_a_clear_error():
    split = random_split()
    empty = type(split)(data=split.data, train=[s[:0] for s in split.train], valid=split.valid,
                        test=split.test, kind=split.kind)
    with pytest.raises(ValueError, match="empty"):
        EASE().fit(empty)
    with pytest.raises(ValueError, match="empty"):
        ItemKNN().fit(empty)
    with pytest.raises(ValueError, match="no training data"):
        GPTRec(dim=8, n_heads=2, max_len=5, train_config=TrainConfig(max_epochs=1)).fit(empty, progress=False)


def test_random_ranks_each_user_the_same_whatever_the_batch_or_order():
    from recnotes.data import load_movielens
    from recnotes.data.splits import leave_one_out
    from recnotes.evaluate import evaluate_candidates, sample_candidates
    from recnotes.models import Random

    split = leave_one_out(load_movielens())
    cands = sample_candidates(split, n_users=30, seed=0)
    one = evaluate_candidates(Random(seed=0).fit(split), split, cands, batch_size=7)
    model = Random(seed=0).fit(split)
    model.score(split.histories("test")[:5])  # earlier calls change nothing
    other = evaluate_candidates(model, split, cands, batch_size=30)
    assert np.array_equal(one.ranks, other.ranks)
    assert not np.array_equal(one.ranks, evaluate_candidates(Random(seed=1).fit(split), split, cands).ranks)
    scores = model.score(split.histories("test")[:3])
    assert torch.equal(scores[1], model.score(split.histories("test")[1:2])[0])
