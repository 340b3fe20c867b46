"""int8 compression of GPTRec against float references computed independently."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from recnotes.models import GPTRec
from recnotes.models import compress
from recnotes.models.compress import Int8Embedding, quantize_gptrec, quantized_engine, state_dict_bytes

torch.set_num_threads(1)
N_ITEMS = 40
needs_engine = pytest.mark.skipif(quantized_engine() is None, reason="no quantized CPU engine in this build")


def trained_like(seed: int = 0, dim: int = 32) -> GPTRec:
    """A small GPTRec whose weights are spread like a trained model's (not the 0.02 init)."""
    torch.manual_seed(seed)
    model = GPTRec(dim=dim, n_layers=2, n_heads=2, max_len=12, dropout=0.0)
    model.build(N_ITEMS)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 2:
                p.normal_(0.0, 1.0 / np.sqrt(p.shape[1]) if "item" not in name else 0.5)
        model.embedding.item.weight[0].zero_()
    return model.eval()


def histories(n: int = 16, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.choice(np.arange(1, N_ITEMS + 1), size=int(rng.integers(2, 20)), replace=False) for _ in range(n)]


def test_int8_embedding_is_a_per_row_rounding_with_bounded_error():
    emb = nn.Embedding(N_ITEMS + 1, 8, padding_idx=0)
    with torch.no_grad():
        emb.weight[0].zero_()
    q = Int8Embedding.from_float(emb)
    w = emb.weight.detach().numpy().astype(np.float64)
    # reference in NumPy: symmetric per-row scale max|w| / 127, round to nearest
    peak = np.abs(w).max(1)
    scale = np.where(peak > 0, peak / 127, 1.0)
    codes = np.clip(np.round(w / scale[:, None]), -127, 127)
    assert q.codes.dtype == torch.int8
    np.testing.assert_array_equal(q.codes.numpy(), codes)
    np.testing.assert_allclose(q.weight.numpy(), codes * scale[:, None], rtol=1e-6, atol=1e-7)
    assert np.all(np.abs(q.weight.numpy() - w) <= scale[:, None] / 2 + 1e-6)
    assert not q.weight[0].any()  # padding stays exactly zero
    ids = torch.tensor([[0, 3, 5], [7, 7, 1]])
    torch.testing.assert_close(q(ids), q.weight[ids])


def test_quantized_embeddings_equal_a_float_model_with_rounded_embeddings():
    model = trained_like()
    q = quantize_gptrec(model, linear=False, embeddings=True)
    # independent reference: the float model with its item table rounded by hand
    ref = trained_like()
    w = ref.embedding.item.weight.detach().double()
    scale = (w.abs().amax(1) / 127).clamp_min(1e-12)
    with torch.no_grad():
        ref.embedding.item.weight.copy_((torch.round(w / scale[:, None]) * scale[:, None]).float())
    hs = histories()
    torch.testing.assert_close(q.score(hs), ref.score(hs), rtol=1e-5, atol=1e-5)
    assert isinstance(q.embedding.item, Int8Embedding)


@needs_engine
def test_int8_model_scores_are_close_to_the_float_model():
    model = trained_like()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    q = quantize_gptrec(model)
    hs = histories(32)
    exact, approx = model.score(hs), q.score(hs)
    assert exact.shape == approx.shape == (len(hs), N_ITEMS + 1)
    relative = (exact - approx)[:, 1:].abs() / exact[:, 1:].std(dim=1, keepdim=True)
    assert float(relative.mean()) < 0.06 and float(relative.max()) < 0.4  # int8 noise << spread of scores
    corr = [np.corrcoef(a, b)[0, 1] for a, b in zip(exact[:, 1:].numpy(), approx[:, 1:].numpy())]
    assert min(corr) > 0.99
    # every Linear is now a dynamically quantized one; the original is untouched
    assert not any(type(m) is nn.Linear for m in q.modules())
    assert any("quantized" in type(m).__module__ for m in q.modules())
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    assert isinstance(model.embedding.item, nn.Embedding)


@needs_engine
def test_int8_weighs_about_a_quarter_of_float():
    model = trained_like(dim=64)
    floats = sum(p.numel() for p in model.parameters())
    size_float = state_dict_bytes(model)
    assert 4 * floats <= size_float < 4 * floats + 64_000  # float32 numbers plus pickle overhead
    size_int8 = state_dict_bytes(quantize_gptrec(model))
    assert size_int8 < 0.5 * size_float


def test_missing_engine_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(compress, "quantized_engine", lambda: None)
    with pytest.raises(RuntimeError, match="no quantized CPU engine"):
        quantize_gptrec(trained_like())
    q = quantize_gptrec(trained_like(), linear=False)  # the embeddings need no engine
    assert q.score(histories(2)).shape == (2, N_ITEMS + 1)


def test_bad_requests_are_clear_errors():
    with pytest.raises(ValueError, match="nothing to quantize"):
        quantize_gptrec(trained_like(), linear=False, embeddings=False)
    with pytest.raises(Exception, match="not fitted"):
        quantize_gptrec(GPTRec(dim=8, n_heads=2))
