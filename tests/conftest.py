"""Fixtures several test modules share: ML-100K's leave-one-out split, the pinned LLM in
float32 on the CPU (so every machine computes the same references), and an IPython shell
whose display outputs a test can read.  Module-scoped, as each module had them."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def split():
    from recnotes.data import load_movielens
    from recnotes.data.splits import leave_one_out

    return leave_one_out(load_movielens())


@pytest.fixture(scope="module")
def backend():
    import torch

    from recnotes.models.llm import HFBackend

    return HFBackend.from_pretrained(device="cpu", dtype=torch.float32)


@pytest.fixture
def shell():
    """An IPython shell whose display outputs the test can read."""
    from IPython.core.interactiveshell import InteractiveShell

    yield InteractiveShell.instance()
    InteractiveShell.clear_instance()
