"""Chapter 6's controls: the prior alone (the same candidates after a prompt with no history),
equal history across prompt formats, and the overlap of a model's top candidate with
Popularity's, each checked against a brute-force reading of its definition."""

from __future__ import annotations

import numpy as np
import pytest

from recnotes.llm_tasks import task_config
from recnotes.models.llm import LLMRanker, item_titles, top_agreement, watched_first_rate
from recnotes.models.llm.prompts import LIST_HEADER


def test_prior_alone_prompt_holds_no_history_film(split):
    titles = item_titles(split.data)
    history = split.histories("test")[3]
    items = np.array([int(history[-1]) + 1, 5, 9])
    prior = LLMRanker(None, titles, template="list", max_history=0)
    prompt = prior.prompt(history, items)
    assert prompt == LIST_HEADER
    assert not any(titles[int(i)] in prompt for i in np.asarray(history).ravel() if i)
    # the continuations are the same lines a ranker with history scores
    full = LLMRanker(None, titles, template="list", max_history=39)
    assert prior.continuations(items, range(3)) == full.continuations(items, range(3))
    assert titles[int(history[-1])] in full.prompt(history, items)
    for name in ("prior-zero-shot-list", "prior-lora"):
        assert task_config(name, profile="ci").max_history == 0
    with pytest.raises(ValueError, match="max_history"):  # a chat prompt without history is no prompt
        LLMRanker(None, titles, template="recency", max_history=0)


def test_equal_history_list_run_shows_as_many_films_as_the_others():
    n = {name: task_config(name, profile="ci").max_history
         for name in ("zero-shot-list-10", "zero-shot-completion", "zero-shot-chat")}
    assert len(set(n.values())) == 1, n
    assert task_config("zero-shot-list", profile="ci").max_history > n["zero-shot-list-10"]


def test_top_agreement_against_brute_force():
    rng = np.random.default_rng(0)
    candidates = np.stack([rng.choice(np.arange(1, 60), 20, replace=False) for _ in range(300)])
    scores = rng.normal(size=candidates.shape)
    popularity = rng.integers(0, 8, 61)  # many ties at the top
    agree = 0
    for row, s in zip(candidates, scores):
        top_film = row[int(np.argmax(s))]
        best = max(popularity[i] for i in row)
        agree += popularity[top_film] == best
    assert top_agreement(scores, candidates, popularity) == pytest.approx(agree / len(candidates))
    # a model that scores by popularity agrees with it for every user
    assert top_agreement(popularity[candidates].astype(float), candidates, popularity) == 1.0


def test_watched_first_rate_against_brute_force():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(200, 20))
    watched = rng.normal(size=200) + 1.5
    slots = rng.integers(0, 20, 200)
    want = np.mean([watched[u] > max(s for k, s in enumerate(scores[u]) if k != slots[u]) for u in range(200)])
    assert watched_first_rate(scores, watched, slots) == pytest.approx(want)
