"""Cold start and short-history scenarios: hidden films never reach training, the right users are
evaluated, and collaborative models cannot tell hidden films apart."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recnotes.data import Interactions, leave_one_out
from recnotes.evaluate import RecentItems, evaluate_full
from recnotes.evaluate.scenarios import evaluate_recent, hide_items
from recnotes.models import EASE, Popularity


@pytest.fixture(scope="module")
def split():
    rng = np.random.default_rng(1)
    rows = []
    for u in range(80):
        items = rng.choice(np.arange(1, 101), size=int(rng.integers(4, 30)), replace=False)
        rows += [(u, int(i), t) for t, i in enumerate(items)]
    return leave_one_out(Interactions.from_frame(pd.DataFrame(rows, columns=["user", "item", "timestamp"])))


def test_hidden_items_never_reach_training(split):
    cold = hide_items(split, share=0.2, seed=3)
    assert len(cold.items) == int(0.2 * split.n_items) and len(np.unique(cold.items)) == len(cold.items)
    assert cold.items.min() >= 1 and cold.items.max() <= split.n_items
    assert not any(np.isin(t, cold.items).any() for t in cold.split.train)
    # what remains is each user's training history without the hidden items, in order
    for old, new in zip(split.train, cold.split.train):
        np.testing.assert_array_equal(new, old[~np.isin(old, cold.items)])
    np.testing.assert_array_equal(cold.split.test, split.test)
    np.testing.assert_array_equal(cold.split.valid, split.valid)
    want = [u for u in range(split.n_users) if split.test[u] in cold.items and split.valid[u] not in cold.items]
    assert cold.users.tolist() == want and len(want) > 0
    # no evaluated user's history (train + validation item) holds a hidden item
    assert not any(np.isin(cold.split.histories("test")[u], cold.items).any() for u in cold.users)


def test_hiding_is_seeded(split):
    a, b, c = hide_items(split, 0.1, seed=0), hide_items(split, 0.1, seed=0), hide_items(split, 0.1, seed=1)
    np.testing.assert_array_equal(a.items, b.items)
    assert not np.array_equal(a.items, c.items)
    with pytest.raises(ValueError):
        hide_items(split, share=1.0)
    with pytest.raises(ValueError):
        hide_items(split, share=0.001)


def test_collaborative_models_give_every_hidden_item_one_score(split):
    cold = hide_items(split, share=0.2, seed=3)
    hist = [cold.split.histories("test")[u] for u in cold.users]
    for model in (Popularity().fit(cold.split), EASE(l2=10.0).fit(cold.split)):
        hidden = model.score(hist).numpy()[:, cold.items]
        assert len(np.unique(hidden)) == 1 and hidden.flat[0] == 0


def test_evaluate_recent_labels_and_matches_recent_items(split):
    models = {"Popularity": {0: Popularity().fit(split)}, "EASE": {0: EASE(l2=10.0).fit(split)}}
    out = evaluate_recent(models, split, sizes=(1, 3))
    assert set(out) == {(1, "Popularity"), (1, "EASE"), (3, "Popularity"), (3, "EASE")}
    r = out[(3, "EASE")][0]
    assert (r.protocol, r.model) == ("P1-last3", "EASE")
    direct = evaluate_full(RecentItems(models["EASE"][0], 3), split, ks=(10,))
    np.testing.assert_array_equal(r.ranks, direct.ranks)
