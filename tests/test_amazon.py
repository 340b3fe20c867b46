"""The Amazon Reviews 2023 loader, offline, on a small file in the real format."""

from __future__ import annotations

import gzip
import io
import itertools
import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from recnotes.data import AmazonUnavailable, Interactions, leave_one_out, load_amazon_reviews
from recnotes.data.amazon import REVIEWS_URL, kcore, read_meta, read_reviews
from recnotes.evaluate import evaluate_full
from recnotes.models import Popularity

DATA = Path(__file__).resolve().parent / "data"
REVIEWS = DATA / "amazon_reviews.jsonl.gz"
META = DATA / "meta_amazon.jsonl.gz"


def raw_reviews() -> list[dict]:
    with gzip.open(REVIEWS, "rt") as f:
        return [json.loads(line) for line in f]


def first_reviews() -> dict[tuple[str, str], int]:
    """(user, product) -> the earliest review's timestamp (ms), straight from the raw file."""
    out: dict[tuple[str, str], int] = {}
    for r in raw_reviews():
        key = (r["user_id"], r["parent_asin"])
        out[key] = min(out.get(key, r["timestamp"]), r["timestamp"])
    return out


def brute_force_core(pairs: set[tuple[str, str]], k: int) -> set[tuple[str, str]]:
    """The largest set of pairs in which every user and product has >= k pairs, by trying every
    subset of users and of products (the union of two valid cores is valid, so the largest
    valid one is unique)."""
    users = sorted({u for u, _ in pairs})
    items = sorted({i for _, i in pairs})
    best: set[tuple[str, str]] = set()
    for nu in range(len(users) + 1):
        for us in itertools.combinations(users, nu):
            us = set(us)
            sub_u = {(u, i) for u, i in pairs if u in us}
            cand_items = sorted({i for _, i in sub_u})
            for ni in range(len(cand_items) + 1):
                for its in itertools.combinations(cand_items, ni):
                    its = set(its)
                    sub = {(u, i) for u, i in sub_u if i in its}
                    if len(sub) <= len(best):
                        continue
                    ucount = {u: 0 for u in us}
                    icount = {i: 0 for i in its}
                    for u, i in sub:
                        ucount[u] += 1
                        icount[i] += 1
                    if min(ucount.values()) >= k and min(icount.values()) >= k:
                        best = sub
    return best


def pairs_of(data: Interactions) -> set[tuple[str, str]]:
    f = data.to_frame(original_ids=True)
    return set(zip(f["user"], f["item"]))


def test_fixture_is_in_the_real_format():
    rows = raw_reviews()
    assert 30 <= len(rows) <= 60
    fields = {"rating", "title", "text", "images", "asin", "parent_asin", "user_id", "timestamp",
              "helpful_vote", "verified_purchase"}
    assert all(set(r) == fields for r in rows)
    assert any(r["asin"] != r["parent_asin"] for r in rows)  # variants
    assert len({(r["user_id"], r["parent_asin"]) for r in rows}) < len(rows)  # repeated reviews
    assert any(a["timestamp"] > b["timestamp"] for a, b in zip(rows, rows[1:]))  # not sorted


def test_read_reviews_keeps_every_review_in_file_order():
    rows = raw_reviews()
    frame = read_reviews(REVIEWS)
    assert list(frame["user"]) == [r["user_id"] for r in rows]
    assert list(frame["item"]) == [r["parent_asin"] for r in rows]
    assert list(frame["timestamp"]) == [r["timestamp"] for r in rows]
    assert np.allclose(frame["rating"], [r["rating"] for r in rows])
    assert list(read_reviews(REVIEWS, item_key="asin")["item"]) == [r["asin"] for r in rows]


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_kcore_matches_brute_force(k):
    pairs = set(first_reviews())
    frame = read_reviews(REVIEWS).drop_duplicates(["user", "item"])
    got = kcore(frame, k)
    assert set(zip(got["user"], got["item"])) == brute_force_core(pairs, k)


def test_kcore_repeats_until_stable():
    frame = read_reviews(REVIEWS).drop_duplicates(["user", "item"])
    once = frame[(frame["user"].map(frame["user"].value_counts()) >= 3)
                 & (frame["item"].map(frame["item"].value_counts()) >= 3)]
    core = kcore(frame, 3)
    assert len(core) < len(once)  # the fixture has a cascade: one pass is not enough
    assert core["user"].value_counts().min() >= 3 and core["item"].value_counts().min() >= 3


@pytest.mark.parametrize("k", [1, 3])
def test_loader_returns_the_core_with_earliest_timestamps(k):
    data = load_amazon_reviews(REVIEWS, k_core=k)
    first = first_reviews()
    assert pairs_of(data) == brute_force_core(set(first), k)
    f = data.to_frame(original_ids=True)
    assert len(f) == len(pairs_of(data))  # each user-product pair once
    assert all(t == first[(u, i)] for u, i, t in zip(f["user"], f["item"], f["timestamp"]))


def test_ids_are_contiguous_and_sorted_like_movielens():
    data = load_amazon_reviews(REVIEWS, k_core=2)
    assert list(data.user_ids) == sorted(data.user_ids)
    assert list(data.item_ids[1:]) == sorted(data.item_ids[1:])
    assert data.user.min() == 0 and data.user.max() == data.n_users - 1
    assert data.item.min() == 1 and data.item.max() == data.n_items
    assert data.timestamp.dtype == np.int64 and data.timestamp.min() > 10**12  # milliseconds


def test_sequences_are_chronological_and_ties_keep_file_order():
    data = load_amazon_reviews(REVIEWS, k_core=1)
    f = data.to_frame(original_ids=True)
    assert (np.diff(f["timestamp"]) >= 0).all()  # rows in time order
    first = first_reviews()
    file_order = {}
    for n, r in enumerate(raw_reviews()):
        file_order.setdefault((r["user_id"], r["parent_asin"]), n)
    for u, seq in enumerate(data.sequences()):
        user = data.user_ids[u]
        keys = [(user, data.item_ids[i]) for i in seq]
        assert keys == sorted(keys, key=lambda key: (first[key], file_order[key]))
    ties = [u for u, g in f.groupby("user") if g["timestamp"].duplicated().any()]
    assert ties  # the fixture has a tie between two products of one user


def test_min_rating_filters_before_the_core():
    data = load_amazon_reviews(REVIEWS, k_core=1, min_rating=4)
    rows = [r for r in raw_reviews() if r["rating"] >= 4]
    assert pairs_of(data) == {(r["user_id"], r["parent_asin"]) for r in rows}


def test_titles_come_from_the_metadata():
    data = load_amazon_reviews(REVIEWS, META, k_core=1)
    meta = {m["parent_asin"]: m for m in (json.loads(line) for line in gzip.open(META, "rt"))}
    for i in range(1, data.n_items + 1):
        asin = data.item_ids[i]
        title = meta.get(asin, {}).get("title", "").strip()
        assert data.title(i) == (title or f"item {asin}")
    with_cats = next(i for i in range(1, data.n_items + 1) if meta.get(data.item_ids[i], {}).get("categories"))
    assert data.item_meta.loc[with_cats, "genres"] == tuple(meta[data.item_ids[with_cats]]["categories"])
    assert read_meta(META)["item"].is_unique
    bare = load_amazon_reviews(REVIEWS, k_core=1)
    assert all(bare.title(i) == f"item {bare.item_ids[i]}" for i in range(1, bare.n_items + 1))


def test_leave_one_out_and_popularity_run_on_it():
    data = load_amazon_reviews(REVIEWS, META, k_core=3)
    split = leave_one_out(data)
    seqs = data.sequences()
    assert all(t == s[-1] and v == s[-2] for t, v, s in zip(split.test, split.valid, seqs))
    model = Popularity().fit(split)
    counts = np.bincount(np.concatenate(split.train), minlength=data.n_items + 1)
    assert np.array_equal(model.score([split.train[0]])[0, 1:].numpy(), counts[1:])
    result = evaluate_full(model, split, stage="test", ks=(1, 5))
    assert result.n_users == data.n_users
    assert ((result.ranks >= 0) & (result.ranks < data.n_items)).all()


def test_offline_download_raises_a_short_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("RECNOTES_CACHE", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError(OSError(-2, "Name or service not known"))

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(AmazonUnavailable) as info:
        load_amazon_reviews("All_Beauty")
    assert isinstance(info.value, RuntimeError)
    message = str(info.value)
    assert "not reachable" in message and REVIEWS_URL.format(category="All_Beauty") in message
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no chained traceback
    assert not any(tmp_path.rglob("*.gz*"))  # no partial download left behind


def test_download_goes_to_the_cache_once(monkeypatch, tmp_path):
    monkeypatch.setenv("RECNOTES_CACHE", str(tmp_path))
    calls = []

    def serve(url, timeout=None):
        calls.append(url)
        return io.BytesIO((META if "/meta_" in url else REVIEWS).read_bytes())

    monkeypatch.setattr(urllib.request, "urlopen", serve)
    data = load_amazon_reviews("All_Beauty", k_core=3)
    assert data.name == "amazon-All_Beauty"
    assert pairs_of(data) == pairs_of(load_amazon_reviews(REVIEWS, k_core=3))
    assert (tmp_path / "amazon-2023" / "All_Beauty.jsonl.gz").is_file()
    assert (tmp_path / "amazon-2023" / "meta_All_Beauty.jsonl.gz").is_file()
    assert data.title(1).startswith("Product")
    n = len(calls)
    load_amazon_reviews("All_Beauty", k_core=3)
    assert len(calls) == n == 2  # reviews and metadata, fetched once


def test_bad_input_gives_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_amazon_reviews(tmp_path / "missing.jsonl.gz")
    with pytest.raises(ValueError, match="category"):
        from recnotes.data.amazon import fetch_amazon
        fetch_amazon("../etc")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"user_id": "u", "rating": 5.0}) + "\n")
    with pytest.raises(ValueError, match="missing field"):
        load_amazon_reviews(bad)
    with pytest.raises(ValueError, match="empty"):
        load_amazon_reviews(REVIEWS, k_core=50)
