"""A re-derivation on a sample: ``first_users`` scores the first users of the same P2 set, on
the same candidates, to the same scores as the whole run; and it leaves the cache keys of the
runs that do not use it as they were."""

from __future__ import annotations

from dataclasses import replace

import numpy as np


def test_the_first_users_are_the_whole_runs_first_rows(monkeypatch, tmp_path):
    from recnotes.llm_experiments import llm_scores
    from recnotes.llm_tasks import task_config

    monkeypatch.setenv("RECNOTES_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("RECNOTES_LLM_DTYPE", "float32")
    config = replace(task_config("zero-shot-list", profile="smoke"), max_history=5)
    whole = llm_scores(config, progress=False)
    first = llm_scores(replace(config, first_users=2), progress=False)
    assert len(whole.users) == 5 and np.array_equal(first.users, whole.users[:2])
    assert np.array_equal(first.items, whole.items[:2])
    np.testing.assert_allclose(first.scores, whole.scores[:2], rtol=1e-5, atol=1e-5)
    # evaluated on its own candidates: each target's rank is the number of candidates scored above it
    from recnotes.experiments import load_split

    result = whole.evaluate(load_split("ml-100k"))
    target = whole.scores[np.arange(len(whole.users)), whole.target_pos]
    assert np.array_equal(result.ranks, (whole.scores > target[:, None]).sum(1))


def test_first_users_and_the_code_are_in_the_key(monkeypatch):
    from recnotes import fingerprint
    from recnotes.experiments import load_split
    from recnotes.llm_experiments import _key
    from recnotes.llm_tasks import task_config

    config = task_config("zero-shot-list", profile="ci")
    split = load_split("ml-100k")
    key = _key(config, split)
    assert _key(replace(config, first_users=3), split) != key
    rerank = task_config("rerank-gptrec", profile="ci")
    rerank_key = _key(rerank, split)
    real = fingerprint._module

    def changed(module):
        monkeypatch.setattr(fingerprint, "_module", lambda m: ("changed", real(m)[1]) if m == module else real(m))

    # a change to the code that scores (here, how a prompt is written) gives every run a new key
    changed("recnotes.models.llm.prompts")
    assert _key(config, split) != key and _key(rerank, split) != rerank_key
    # a change to GPTRec's code: new candidates for the re-ranking run, the same for a P2 run
    changed("recnotes.models.gptrec")
    assert _key(config, split) == key and _key(rerank, split) != rerank_key
