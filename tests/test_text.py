"""Text embeddings: the pinned sentence encoder offline, the zero-shot TextEmbedding
recommender against a brute-force reference, cold-start items, and the projection
used to initialise item embeddings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from recnotes.data import Interactions, leave_one_out, load_movielens
from recnotes.evaluate import evaluate_candidates, sample_candidates
from recnotes.models import Popularity
from recnotes.models.text import (TextEmbedding, encode_items, item_text, item_texts, load_encoder,
                                  projected_item_embeddings, recency_weights)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def encoder():
    return load_encoder(device="cpu")


@pytest.fixture(scope="module")
def meta() -> pd.DataFrame:
    return load_movielens().item_meta


def test_item_texts_from_movielens(meta):
    texts = item_texts(meta)
    assert texts[0] == "" and len(texts) == 1683
    assert texts[1] == "Toy Story (1995): Animation, Children's, Comedy"
    assert item_text("Untitled", None, ("unknown",)) == "Untitled"


def test_pinned_encoder_offline_and_cache(encoder, meta, monkeypatch, tmp_path):
    monkeypatch.setenv("RECNOTES_CACHE", str(tmp_path))
    small = meta.iloc[:40]
    vecs = encode_items(small, encoder)
    assert vecs.shape == (40, 384) and vecs.dtype == np.float32
    assert np.allclose(vecs[0], 0) and np.allclose(np.linalg.norm(vecs[1:], axis=1), 1, atol=1e-5)
    direct = encoder.encode(item_texts(small)[1:], normalize_embeddings=True)
    assert np.abs(vecs[1:] - direct).max() < 1e-5  # row k is item k's text
    (cached,) = (tmp_path / "text-embeddings").glob("*.npy")
    monkeypatch.setattr(encoder, "encode", lambda *a, **k: pytest.fail("should read the cache"))
    assert np.array_equal(encode_items(small, encoder), vecs)


def test_encoder_puts_related_titles_together(encoder):
    v = encoder.encode(["Star Wars (1977): Action, Adventure, Romance, Sci-Fi, War",
                        "Return of the Jedi (1983): Action, Adventure, Romance, Sci-Fi, War",
                        "Sense and Sensibility (1995): Drama, Romance"], normalize_embeddings=True)
    assert v[0] @ v[1] > v[0] @ v[2]


def test_unknown_encoder_offline_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("RECNOTES_ONLINE", raising=False)
    with pytest.raises(RuntimeError, match="not available offline"):
        load_encoder("recnotes-test/no-such-encoder", device="cpu")


def reference_scores(vectors: np.ndarray, history: list[int], half_life: float) -> np.ndarray:
    """Cosine of every item with the recency-weighted mean of the history's unit vectors."""
    unit = np.array([v / np.linalg.norm(v) if np.linalg.norm(v) > 0 else v for v in vectors])
    n = len(history)
    weights = [0.5 ** ((n - 1 - j) / half_life) for j in range(n)]
    u = sum(w * unit[i] for w, i in zip(weights, history)) / sum(weights)
    return unit @ (u / np.linalg.norm(u))


def test_text_embedding_scores_match_reference():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(30, 6)).astype(np.float32)
    vectors[0] = 0
    model = TextEmbedding(vectors, half_life=2.0, max_history=None)
    assert model.name == "TextEmbedding"
    histories = [np.array([3, 7, 7, 12]), np.array([0, 0, 5]), np.array([], dtype=np.int64)]
    scores = model.score(histories).numpy()
    assert scores.shape == (3, 30) and np.isneginf(scores[:, 0]).all()
    assert np.allclose(scores[0, 1:], reference_scores(vectors, [3, 7, 7, 12], 2.0)[1:], atol=1e-5)
    assert np.allclose(scores[1, 1:], reference_scores(vectors, [5], 2.0)[1:], atol=1e-5)
    assert np.allclose(scores[2, 1:], 0)  # no history: no preference, and no NaN
    cand = np.array([[4, 9, 3], [1, 2, 5], [6, 7, 8]])
    assert torch.equal(model.score_candidates(histories, cand), model.score(histories).gather(1, torch.from_numpy(cand)))


def test_recency_weighting_favours_the_latest_item():
    vectors = np.eye(4, dtype=np.float32)  # items 1..3 orthogonal
    recent = TextEmbedding(vectors, half_life=1.0).score([np.array([1, 2])])[0]
    flat = TextEmbedding(vectors, half_life=None).score([np.array([1, 2])])[0]
    assert recent[2] > recent[1] and flat[2] == pytest.approx(float(flat[1]))
    assert recency_weights(3, 1.0).tolist() == [0.25, 0.5, 1.0]
    with pytest.raises(ValueError, match="half_life"):
        TextEmbedding(vectors, half_life=0)


def test_cold_start_items_can_be_ranked():
    """An item no user trained on: popularity cannot tell it from others, text can."""
    rows = [(u, i, t) for u in range(12) for t, i in enumerate([1, 2, 3, 1 + (u % 3)])]
    rows = [(u, i, t) for u, i, t in rows if t < 3] + [(u, 4 + (u % 2), 3) for u in range(12)]
    rows += [(u, 6, 4) for u in range(12)]  # item 6: every user's test item, never trained on
    split = leave_one_out(Interactions.from_frame(pd.DataFrame(rows, columns=["user", "item", "timestamp"])))
    n = split.n_items
    assert all(6 not in h for h in split.histories("test"))
    vectors = np.random.default_rng(1).normal(size=(n + 1, 8)).astype(np.float32)
    vectors[6] = vectors[1] + vectors[2] + vectors[3]  # the new item's text resembles the history
    cands = sample_candidates(split, n_users=None, n_negatives=1, seed=0)
    text = evaluate_candidates(TextEmbedding(vectors, half_life=None).fit(split), split, cands, ks=(1,))
    pop = evaluate_candidates(Popularity().fit(split), split, cands, ks=(1,))
    assert (text.ranks == 0).mean() > 0.9
    assert (pop.ranks == 0).mean() < 0.5  # the untrained item never wins on popularity


def test_projection_is_scaled_pca():
    rng = np.random.default_rng(0)
    vecs = np.vstack([np.zeros(5), rng.normal(size=(50, 5)) @ np.diag([5, 3, 1, 0.5, 0.1])])
    full = projected_item_embeddings(vecs, 5, std=0.02).numpy().astype(np.float64)
    assert full.shape == (51, 5) and np.allclose(full[0], 0)
    assert full[1:].std() == pytest.approx(0.02, rel=1e-4)
    centred = vecs[1:] - vecs[1:].mean(0)
    d_ref = np.linalg.norm(centred[:, None] - centred[None], axis=-1)
    d_got = np.linalg.norm(full[1:, None] - full[None, 1:], axis=-1)
    assert np.allclose(d_got, d_ref * (d_got.max() / d_ref.max()), atol=1e-6)  # full rank: an isometry
    two = projected_item_embeddings(vecs, 2).numpy()
    assert two[1:, 0].var() > two[1:, 1].var() > 0  # leading components first
    wide = projected_item_embeddings(vecs, 9, seed=3)
    assert wide.shape == (51, 9) and torch.equal(wide, projected_item_embeddings(vecs, 9, seed=3))
