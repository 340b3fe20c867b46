"""A re-derivation on a sample: ``first_users`` scores the first users of the same P2 set, on
the same candidates, to the same scores as the whole run; and it leaves the cache keys of the
runs that do not use it as they were."""

from __future__ import annotations

from dataclasses import replace

import numpy as np


def test_the_first_users_are_the_whole_runs_first_rows(monkeypatch, tmp_path):
    from recnotes.llm_experiments import llm_scores, task_config

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


def test_a_config_without_first_users_keeps_its_key():
    import hashlib
    import json
    from dataclasses import asdict

    from recnotes import __version__
    from recnotes.device import get_device, inference_dtype
    from recnotes.experiments import data_fingerprint, load_split
    from recnotes.llm_experiments import LLM_REVISION, _key, task_config

    config = task_config("zero-shot-list", profile="ci")
    split = load_split("ml-100k")
    fields = asdict(config)
    fields.pop("first_users")  # the key's config as it was before the field existed
    device = get_device(None)
    blob = json.dumps({"kind": "LLMScoresConfig", "config": fields, "data": data_fingerprint(split),
                       "version": __version__, "revision": LLM_REVISION, "device": device.type,
                       "dtype": str(inference_dtype(device))}, sort_keys=True, default=str)
    assert _key(config, split) == hashlib.sha256(blob.encode()).hexdigest()[:16]
    assert _key(replace(config, first_users=3), split) != _key(config, split)
