"""The ML-100K loader against an independent plain-Python reading of the pinned file."""

from __future__ import annotations

import csv
from collections import Counter

import numpy as np
import pytest

from recnotes import assets
from recnotes.data import PAD, load_movielens


@pytest.fixture(scope="module")
def data():
    return load_movielens("ml-100k")


@pytest.fixture(scope="module")
def raw_rows():
    path = assets.fetch("ml-100k", quiet=True) / "ml-100k.inter"
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    return rows[1:]


def test_counts_match_the_file(data, raw_rows):
    assert len(data) == len(raw_rows) == 100_000
    assert data.n_users == len({r[0] for r in raw_rows}) == 943
    assert data.n_items == len({r[1] for r in raw_rows}) == 1682


def test_ids_are_contiguous_and_map_back(data, raw_rows):
    assert data.user.min() == 0 and data.user.max() == data.n_users - 1
    assert data.item.min() == 1 and data.item.max() == data.n_items  # 0 is padding
    assert PAD == 0 and data.item_meta.title.iat[0] == "<pad>"
    for k in (0, 1234, 99_999):
        user, item, rating, ts = raw_rows[k]
        assert data.user_ids[data.user[k]] == int(user)
        assert data.item_ids[data.item[k]] == int(item)
        assert data.rating[k] == float(rating) and data.timestamp[k] == int(float(ts))


def test_item_metadata(data):
    toy = int(np.flatnonzero(data.item_ids == 1)[0])
    assert data.title(toy) == "Toy Story (1995)"
    assert set(data.item_meta.genres.iat[toy]) == {"Animation", "Children's", "Comedy"}
    assert data.item_meta.title.iloc[1:].map(len).min() > 0


def test_sequences_are_chronological_and_stable(data):
    seqs = data.sequences()
    assert len(seqs) == data.n_users and sum(map(len, seqs)) == len(data)
    frame = data.to_frame()
    # Independent reference: a stable sort of each user's rows by timestamp.
    for u in (0, 5, 400, 942):
        rows = frame[frame.user == u]
        expected = rows.sort_values("timestamp", kind="stable").item.to_numpy()
        np.testing.assert_array_equal(seqs[u], expected)


def test_filter_is_a_k_core(data):
    core = data.filter(min_user=30, min_item=30)
    assert core.user_counts().min() >= 30 and core.item_counts()[1:].min() >= 30
    liked = data.filter(min_rating=4)
    assert len(liked) == int((data.rating >= 4).sum())
    assert Counter(liked.rating.tolist()).keys() <= {4.0, 5.0}
    with pytest.raises(ValueError, match="leaves no interactions"):
        data.filter(min_user=10_000)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown MovieLens dataset"):
        load_movielens("ml-7k")
    with pytest.raises(ValueError, match="not a MovieLens folder"):
        load_movielens("ml-100k", path=tmp_path)
    with pytest.raises(ValueError, match="only ml-100k has a pinned"):
        load_movielens("ml-1m", source="pinned")
