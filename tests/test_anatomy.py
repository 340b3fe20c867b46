"""recnotes.report.anatomy: parameter counts per part add up and follow the given parts."""

from __future__ import annotations

import pytest
import torch

from recnotes.models.gptrec import GPTRec
from recnotes.report.anatomy import parameter_parts


def small_gptrec() -> GPTRec:
    model = GPTRec(dim=16, n_layers=2, n_heads=2, max_len=10)
    model.build(30)
    return model


def test_parts_by_substring_count_every_parameter_once():
    model = small_gptrec()
    parts = parameter_parts(model, {"embedding.item": "items", "embedding.position": "positions",
                                    "attn": "attention", "ffn": "feed-forward", "ln": "norms"})
    assert list(parts.index) == ["items", "positions", "norms", "attention", "feed-forward"]
    assert parts["parameters"].sum() == sum(p.numel() for p in model.parameters())
    assert parts.loc["items", "parameters"] == 31 * 16  # 30 films and the padding id, width 16
    assert parts.loc["attention", "parameters"] == 2 * (16 * 48 + 48 + 16 * 16 + 16)
    assert parts["share (%)"].sum() == pytest.approx(100, abs=0.3)


def test_parts_by_function_and_the_rest_as_other():
    model = small_gptrec()
    by_rank = parameter_parts(model, lambda name, p: "matrices" if p.ndim == 2 else "vectors")
    assert set(by_rank.index) == {"matrices", "vectors"}
    rest = parameter_parts(model, {"embedding": "embeddings"})
    assert set(rest.index) == {"embeddings", "other"}
    assert rest["parameters"].sum() == sum(p.numel() for p in model.parameters())


def test_a_model_without_parameters_is_an_error():
    with pytest.raises(ValueError, match="no parameters"):
        parameter_parts(torch.nn.Identity(), {})
