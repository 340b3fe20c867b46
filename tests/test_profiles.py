"""Profiles: the environment wins over a chapter's parameter, and a sweep keeps its ends."""

from __future__ import annotations

import pytest

from recnotes.profiles import PROFILES, get_profile, resolve_profile


def test_the_environment_wins_and_an_unknown_name_is_refused(monkeypatch):
    monkeypatch.setenv("RECNOTES_PROFILE", "ci")
    assert resolve_profile("full") == "ci" and get_profile("full").name == "ci"
    monkeypatch.delenv("RECNOTES_PROFILE")
    assert resolve_profile(None) == "full"
    with pytest.raises(ValueError, match="unknown profile"):
        resolve_profile("huge")


@pytest.mark.parametrize("values", [(1, 3, 10, 30), ("GPTRec", "LSTM"), (5,)])
def test_a_sweep_runs_every_value_in_full_and_its_ends_first_in_the_small_profiles(values):
    assert PROFILES["full"].swept(values) == values
    for name in ("ci", "smoke"):
        got = PROFILES[name].swept(values)
        assert got[0] == values[0] and set(got) <= set(values) and list(got) == sorted(got, key=values.index)
        assert len(got) == min(len(values), PROFILES[name].sweep_points)
        if len(got) > 1:
            assert got[-1] == values[-1]


def test_the_small_profiles_are_smaller_in_every_size():
    full = PROFILES["full"]
    for name in ("ci", "smoke"):
        p = PROFILES[name]
        assert p.sample_users is not None and p.timing_repeats < full.timing_repeats
        assert p.timed_runs <= full.timed_runs and p.n_bootstrap < full.n_bootstrap
