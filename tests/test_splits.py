"""Splits and padding against plain-Python references."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recnotes.data import PAD, Interactions, leave_one_out, load_movielens, pad_sequences, random_split


@pytest.fixture(scope="module")
def ml100k():
    return load_movielens("ml-100k")


def frame(rows) -> Interactions:
    """Interactions from (user, item, timestamp) triples in the given row order."""
    return Interactions.from_frame(pd.DataFrame(rows, columns=["user", "item", "timestamp"]))


def reference_sequences(rows) -> dict:
    """Per original user: original items sorted by (timestamp, row order), by plain Python."""
    out: dict = {}
    for pos, (u, i, t) in sorted(enumerate(rows), key=lambda r: (r[1][0], r[1][2], r[0])):
        out.setdefault(u, []).append(i)
    return out


random_rows = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 7), st.integers(0, 3)),
                       min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(random_rows)
def test_leave_one_out_matches_a_plain_python_reference(rows):
    """Last = test, second-to-last = valid, rest = train; ties keep the row order."""
    ref = reference_sequences(rows)
    data = frame(rows)
    if min(len(v) for v in ref.values()) < 3:
        with pytest.raises(ValueError, match="fewer than 3 interactions"):
            leave_one_out(data)
        return
    split = leave_one_out(data)
    assert split.n_users == len(ref)
    for u in range(split.n_users):
        seq = [data.item_ids[i] for i in split.train[u]]
        expected = ref[data.user_ids[u]]
        assert seq + [data.item_ids[split.valid[u]], data.item_ids[split.test[u]]] == expected
        assert list(split.histories("test")[u]) == list(split.train[u]) + [split.valid[u]]


@settings(max_examples=60, deadline=None)
@given(random_rows, st.integers(0, 3))
def test_random_split_holds_out_two_interactions_per_user(rows, seed):
    data = frame(rows)
    ref = reference_sequences(rows)
    if min(len(v) for v in ref.values()) < 3:
        return
    split = random_split(data, seed=seed)
    for u in range(split.n_users):
        expected = [data.item_ids.tolist().index(i) for i in ref[data.user_ids[u]]]
        train = list(split.train[u])
        # The multiset of the user's items is kept exactly ...
        assert Counter(train + [split.valid[u], split.test[u]]) == Counter(expected)
        # ... and training items stay in chronological order (a subsequence of the sequence).
        it = iter(expected)
        assert all(any(x == y for y in it) for x in train)


def test_ml100k_split_keeps_every_user_and_never_leaks_targets(ml100k):
    assert len(np.unique(ml100k.user * (ml100k.n_items + 1) + ml100k.item)) == len(ml100k)  # no repeats
    for split in (leave_one_out(ml100k), random_split(ml100k, seed=3)):
        assert split.n_users == ml100k.n_users == 943  # every user has >= 20 >= 3 interactions
        assert split.n_items == 1682
        assert sum(len(t) for t in split.train) + 2 * split.n_users == len(ml100k)
        for u in range(split.n_users):
            assert split.valid[u] not in split.train[u] and split.test[u] not in split.train[u]
            assert split.valid[u] != split.test[u]
            assert split.test[u] not in split.histories("test")[u]
        m = split.train_matrix("test")
        assert m.shape == (943, 1683) and set(np.unique(m.data)) == {1.0}
        assert m[np.arange(943), split.test].sum() == 0  # the test target is never in the matrix
        assert m[np.arange(943), split.valid].sum() == 943


def test_random_split_is_seeded(ml100k):
    a, b, c = random_split(ml100k, seed=1), random_split(ml100k, seed=1), random_split(ml100k, seed=2)
    assert np.array_equal(a.test, b.test) and np.array_equal(a.valid, b.valid)
    assert not np.array_equal(a.test, c.test)


def test_short_users_raise_or_are_dropped():
    rows = [(1, 10, 0), (1, 11, 1), (1, 12, 2), (2, 10, 0), (2, 11, 1)]
    with pytest.raises(ValueError, match="1 user.*fewer than 3 interactions.*original user 2"):
        leave_one_out(frame(rows))
    with pytest.raises(ValueError, match="fewer than 3"):
        random_split(frame(rows))
    split = leave_one_out(frame(rows), drop_short=True)
    assert split.n_users == 1 and list(split.data.user_ids) == [1]
    with pytest.raises(ValueError, match="min_interactions must be >= 3"):
        leave_one_out(frame(rows), min_interactions=2)
    with pytest.raises(ValueError, match="leaves no interactions"):
        leave_one_out(frame(rows[3:]), drop_short=True)


def test_empty_data_and_bad_stage():
    with pytest.raises(ValueError, match="empty"):
        frame([])
    split = leave_one_out(frame([(1, 1, 0), (1, 2, 1), (1, 3, 2)]))
    with pytest.raises(ValueError, match="stage must be"):
        split.histories("train")
    with pytest.raises(ValueError, match="stage must be"):
        split.targets("tset")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.integers(1, 9), max_size=8), max_size=6), st.integers(1, 6))
def test_pad_sequences_left_pads_and_keeps_the_latest(seqs, max_len):
    out = pad_sequences([np.array(s, np.int64) for s in seqs], max_len).numpy()
    assert out.shape == (len(seqs), max_len)
    for row, s in zip(out, seqs):
        kept = s[-max_len:] if s else []
        expected = [PAD] * (max_len - len(kept)) + kept
        assert row.tolist() == expected


def test_pad_sequences_rejects_bad_length():
    with pytest.raises(ValueError, match="max_len"):
        pad_sequences([np.array([1])], 0)


def test_select_users_keeps_items_and_each_users_data():
    """A population of users keeps its own sequences and targets, and the item ids."""
    from recnotes.data import Interactions, leave_one_out
    import pandas as pd

    frame = pd.DataFrame({"user": [5, 5, 5, 5, 7, 7, 7, 9, 9, 9, 9],
                          "item": [10, 11, 12, 13, 11, 13, 14, 10, 14, 12, 11],
                          "timestamp": [1, 2, 3, 4, 1, 2, 3, 4, 3, 2, 1]})
    split = leave_one_out(Interactions.from_frame(frame))
    sub = split.select_users(np.array([2, 0]))
    assert sub.n_users == 2 and sub.n_items == split.n_items
    for new, old in enumerate([2, 0]):
        np.testing.assert_array_equal(sub.train[new], split.train[old])
        assert sub.valid[new] == split.valid[old] and sub.test[new] == split.test[old]
        np.testing.assert_array_equal(sub.data.sequences()[new], split.data.sequences()[old])
    assert list(sub.data.user_ids) == [9, 5]
    with pytest.raises(ValueError, match="distinct"):
        split.select_users(np.array([0, 0]))


def test_tied_targets_against_a_brute_force_count():
    from recnotes.data import load_movielens
    from recnotes.data.splits import leave_one_out, tied_targets

    data = load_movielens()
    split = leave_one_out(data)
    tied = tied_targets(split)
    frame = data.to_frame()
    brute = []
    for u in range(data.n_users):
        ts = sorted(frame.loc[frame.user == u, "timestamp"].tolist())
        brute.append(ts[-1] == ts[-2])
    assert tied.tolist() == brute
