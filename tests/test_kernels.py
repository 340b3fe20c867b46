"""The fast training kernels against plain PyTorch: the fused output layer + cross-entropy
against ``F.cross_entropy`` (value and gradients), the dropout mask's rate and scaling, and
the LSTM without packing against the packed reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from recnotes.models import LSTM
from recnotes.models.kernels import Dropout, keep_mask, linear_cross_entropy, reference, using_reference

torch.set_num_threads(1)


def _grads(fn, h, w, b):
    for t in (h, w, b):
        if t is not None:
            t.grad = None
    loss = fn()
    loss.backward()
    return loss.detach(), [None if t is None else t.grad.clone() for t in (h, w, b)]


@pytest.mark.parametrize("bias", [False, True])
def test_fused_cross_entropy_equals_pytorch_in_float32(bias):
    g = torch.Generator().manual_seed(0)
    h = torch.randn(37, 8, generator=g, requires_grad=True)
    w = torch.randn(50, 8, generator=g, requires_grad=True)
    b = torch.randn(50, generator=g, requires_grad=True) if bias else None
    y = torch.randint(0, 50, (37,), generator=g)
    ref_loss, ref_grads = _grads(lambda: F.cross_entropy(F.linear(h, w, b), y), h, w, b)
    loss, grads = _grads(lambda: 2.0 * linear_cross_entropy(h, w, b, y), h, w, b)  # chain rule too
    assert torch.allclose(loss, 2.0 * ref_loss, atol=1e-5)
    for got, want in zip(grads, ref_grads):
        if want is not None:
            assert torch.allclose(got, 2.0 * want, atol=1e-5), (got - 2 * want).abs().max()


def test_fused_cross_entropy_in_bf16_is_close_to_float32():
    g = torch.Generator().manual_seed(1)
    h = torch.randn(64, 16, generator=g, requires_grad=True)
    w = torch.randn(200, 16, generator=g, requires_grad=True)
    y = torch.randint(0, 200, (64,), generator=g)
    ref_loss, (ref_h, ref_w, _) = _grads(lambda: F.cross_entropy(h @ w.T, y), h, w, None)
    loss, (gh, gw, _) = _grads(lambda: linear_cross_entropy(h, w, None, y, torch.bfloat16), h, w, None)
    assert gh.dtype == gw.dtype == torch.float32
    assert abs(float(loss - ref_loss)) / float(ref_loss) < 0.02
    for got, want in ((gh, ref_h), (gw, ref_w)):
        assert float((got - want).norm() / want.norm()) < 0.05


def test_fused_cross_entropy_stays_finite_when_the_target_probability_underflows():
    h = torch.tensor([[1.0]], requires_grad=True)
    w = torch.tensor([[200.0], [-200.0]], requires_grad=True)
    loss = linear_cross_entropy(h, w, None, torch.tensor([1]))
    loss.backward()
    assert torch.isfinite(loss) and float(loss.detach()) > 80
    assert torch.allclose(h.grad, torch.tensor([[400.0]]))  # exact: (softmax - onehot) @ w = 1 * 200 + (-1) * (-200)


def test_reference_switch_is_scoped():
    assert not using_reference()
    with reference():
        assert using_reference()
        with reference():
            assert using_reference()
        assert using_reference()
    assert not using_reference()


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_dropout_mask_rate_and_scaling(p):
    torch.manual_seed(0)
    n = 400_000
    keep = keep_mask((n,), p)
    rate = float(keep.float().mean())
    assert abs(rate - (1 - p)) < 5 * np.sqrt(p * (1 - p) / n)  # five standard errors
    drop = Dropout(p).train()
    x = torch.ones(n)
    out = drop(x)
    values = torch.unique(out)
    assert values[0] == 0.0 and len(values) == 2 and torch.isclose(values[1], torch.tensor(drop.scale))
    assert abs(float(out.mean()) - 1.0) < 0.01  # inverted dropout keeps the mean
    assert torch.equal(Dropout(p).eval()(x), x)


def test_dropout_is_seeded_and_spreads_over_all_16_bit_lanes():
    torch.manual_seed(3)
    a = Dropout(0.25).train()(torch.ones(4096))
    torch.manual_seed(3)
    b = Dropout(0.25).train()(torch.ones(4096))
    assert torch.equal(a, b)
    # each of the four 16-bit lanes of a 64-bit draw keeps about 3/4 of its elements
    lanes = (a.view(-1, 4) != 0).float().mean(0)
    assert torch.all((lanes > 0.7) & (lanes < 0.8)), lanes


def test_dropout_rejects_bad_probability():
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(1.0)


def test_lstm_without_packing_equals_the_packed_reference():
    torch.manual_seed(0)
    model = LSTM(embedding_dim=8, hidden=12, n_layers=2, max_len=10, dropout=0.0)
    model.build(30)
    model.eval()
    seqs = torch.tensor([[0, 0, 0, 4, 5, 6, 7, 8, 9, 10], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
                         [0, 0, 0, 0, 0, 0, 0, 0, 0, 3]])
    fast = model.encode(seqs)
    with reference():
        packed = model.encode(seqs)
    assert torch.allclose(fast, packed, atol=1e-6)
    assert torch.all(fast[seqs == 0] == 0)
