"""Genre-and-year popularity scores a film nobody rated from its genre and era neighbours."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from recnotes.data import Interactions, leave_one_out
from recnotes.evaluate import evaluate_full
from recnotes.models import GenreYearPopularity

ITEMS = pd.DataFrame({
    "item": [10, 11, 12, 13, 14, 15, 16, 17],
    "title": [f"film {i}" for i in range(8)],
    "year": pd.array([1990, 1991, 1995, 1990, None, 1998, 1990, 1993], dtype="Int64"),
    "genres": [("Drama",), ("Drama", "Comedy"), ("Comedy",), ("Action",), ("Drama",), ("Horror",),
               ("unknown",), ("Drama", "Action")],
})


def make_split(extra_views_of_12: int = 0):
    """Users watch films 10, 11, 13, 14 and 16 (and 12, if asked); 12, 15 and 17 are targets."""
    rng = np.random.default_rng(0)
    rows, t = [], 0
    watched = [10, 10, 10, 11, 11, 13, 14, 14, 16]
    for u in range(9):
        seq = list(rng.permutation(watched[: 3 + u % 6]))[:4]
        seq = list(dict.fromkeys(seq))
        if u < extra_views_of_12:
            seq.insert(0, 12)
        seq += [12, 15] if u == 8 else [15 if u % 2 else 17, 17 if u % 2 else 15]  # validation, test
        for item in seq:
            rows.append((u, item, t))
            t += 1
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    return leave_one_out(Interactions.from_frame(frame, ITEMS))


def brute_force(split, half_life: float) -> np.ndarray:
    """The module docstring's rule, one pair at a time."""
    meta = split.data.item_meta
    counts = np.zeros(split.n_items + 1)
    for h in split.train:
        for i in set(h.tolist()):
            counts[i] += 1
    out = np.zeros(split.n_items + 1)
    rated = [j for j in range(1, split.n_items + 1) if counts[j] > 0]
    for i in range(1, split.n_items + 1):
        gi = {g for g in meta.loc[i, "genres"] if g != "unknown"}
        num = den = 0.0
        for j in rated:
            if j == i:
                continue
            gj = {g for g in meta.loc[j, "genres"] if g != "unknown"}
            jac = len(gi & gj) / len(gi | gj) if gi | gj else 0.0
            yi, yj = meta.loc[i, "year"], meta.loc[j, "year"]
            era = 1.0 if pd.isna(yi) or pd.isna(yj) else 0.5 ** (abs(int(yi) - int(yj)) / half_life)
            num += jac * era * counts[j]
            den += jac * era
        out[i] = num / den if den > 0 else np.mean([counts[j] for j in rated])
    return out


@pytest.mark.parametrize("half_life", [1.0, 2.0, 10.0])
def test_scores_match_the_brute_force_rule(half_life):
    split = make_split()
    got = GenreYearPopularity(year_half_life=half_life).fit(split).score([split.train[0]]).numpy()[0]
    want = brute_force(split, half_life)
    np.testing.assert_allclose(got[1:], want[1:], rtol=1e-5)
    assert got[0] < got[1:].min()  # padding below every film


def test_a_film_nobody_rated_is_scored_by_its_neighbours():
    split = make_split()
    item_of = {orig: i for i, orig in enumerate(split.data.item_meta["item"])}
    f17 = item_of[17]  # Drama and Action, 1993: never in a training history
    assert all(f17 not in h for h in split.train)
    scores = GenreYearPopularity().fit(split).score([split.train[0]]).numpy()[0]
    assert scores[f17] > 0 and math.isclose(scores[f17], brute_force(split, 2.0)[f17], rel_tol=1e-5)
    # film 15 (Horror) shares no genre with any rated film: the mean popularity of the rated films
    counts = np.bincount(np.concatenate([np.unique(h) for h in split.train]), minlength=split.n_items + 1)
    assert math.isclose(scores[item_of[15]], counts[counts > 0].mean(), rel_tol=1e-6)


def test_a_films_own_interactions_do_not_change_its_score():
    base, more = make_split(0), make_split(4)  # film 12 unrated, then rated by four users
    item_of = {orig: i for i, orig in enumerate(base.data.item_meta["item"])}
    a = GenreYearPopularity().fit(base).score([base.train[0]]).numpy()[0]
    b = GenreYearPopularity().fit(more).score([more.train[0]]).numpy()[0]
    assert math.isclose(a[item_of[12]], b[item_of[12]], rel_tol=1e-6)
    assert b[item_of[11]] != a[item_of[11]]  # its Comedy neighbour now counts film 12's users


def test_every_user_gets_the_same_scores_and_seen_films_are_masked():
    split = make_split()
    model = GenreYearPopularity().fit(split)
    s = model.score(split.histories("test")[:3]).numpy()
    assert (s == s[0]).all()
    res = evaluate_full(model, split, ks=(1, 5))
    assert res.model == "GenreYearPopularity"
    # the top lists hold no seen film, and are the best unseen films by the shared scores
    from recnotes.report.tables import top_k

    hist = split.histories("test")
    k = min(split.n_items - len({int(x) for x in np.asarray(h) if x}) for h in hist)  # every list all unseen
    assert k >= 2
    tops = top_k(model, hist, k=k)
    for h, top in zip(hist, tops):
        seen = {int(x) for x in np.asarray(h) if x}
        assert seen and not seen & {int(x) for x in top}
        unseen = np.array([i for i in range(1, split.n_items + 1) if i not in seen])
        best = np.sort(s[0][unseen])[::-1][:k]
        np.testing.assert_array_equal(np.sort(s[0][np.asarray(top)])[::-1], best)


def test_bad_half_life_and_unfitted():
    with pytest.raises(ValueError):
        GenreYearPopularity(year_half_life=0)
    with pytest.raises(RuntimeError, match="not fitted"):
        GenreYearPopularity().score([np.array([1])])
