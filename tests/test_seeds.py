"""The dataset a model of the book is trained and recorded under is the one its split was
loaded as: a chapter rerun on another dataset cannot fall back to the default name (which
trained every neural model a second time per seed, under a key labelled ml-100k)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recnotes.data import Interactions, leave_one_out
from recnotes.evaluate import evaluate_full
from recnotes.evaluate.scenarios import hide_items
from recnotes.experiments import dataset_of, load_split
from recnotes.models import Popularity
from recnotes.seeds import evaluate_seeds, seeds_of, seed_models


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(3)
    rows = [(u, int(i), t) for u in range(40) for t, i in enumerate(rng.choice(np.arange(1, 31), 8, replace=False))]
    return leave_one_out(Interactions.from_frame(pd.DataFrame(rows, columns=["user", "item", "timestamp"])))


def test_a_loaded_split_names_its_dataset_and_refuses_another():
    split = load_split("ml-100k")
    assert dataset_of(split) == "ml-100k" and dataset_of(split, "ml-100k") == "ml-100k"
    with pytest.raises(ValueError, match="loaded as 'ml-100k', not 'ml-1m'"):
        dataset_of(split, "ml-1m")
    with pytest.raises(ValueError, match="wrong dataset"):
        seed_models("Popularity", split, dataset="elsewhere")


def test_a_derived_split_needs_its_dataset_named(small):
    with pytest.raises(ValueError, match="not made by load_split"):
        seed_models("Popularity", small)
    cold = hide_items(load_split("ml-100k"), share=0.1, seed=0).split
    with pytest.raises(ValueError, match="not made by load_split"):
        dataset_of(cold)
    assert dataset_of(cold, "ml-100k") == "ml-100k"


def test_seed_models_and_evaluate_seeds_of_a_simple_model(small):
    got = seed_models("Popularity", small, profile="full", seed=4, dataset="toy")
    assert list(got) == [4] and isinstance(got[4], Popularity)
    assert seeds_of("GPTRec", "full") == seeds_of("LSTM", "full") and len(seeds_of("GPTRec", "full")) > 1
    res = evaluate_seeds("Popularity", small, "P1", ks=(10,), profile="full", seed=4, dataset="toy")
    direct = Popularity().fit(small)
    np.testing.assert_array_equal(res[4].ranks, evaluate_full(direct, small, ks=(10,)).ranks)
    with pytest.raises(ValueError, match="needs the candidates"):
        evaluate_seeds("Popularity", small, "P2", dataset="toy")
