"""Attention and leave-one-out attribution against brute-force recomputation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from recnotes.data import Interactions, leave_one_out as loo_split
from recnotes.explain import agreement, attention_maps, last_attention, leave_one_out, model_window, occlusion
from recnotes.models import EASE, GPTRec

torch.set_num_threads(1)
N_ITEMS = 30


def model(seed: int = 0, max_len: int = 10) -> GPTRec:
    torch.manual_seed(seed)
    m = GPTRec(dim=16, n_layers=2, n_heads=4, max_len=max_len, dropout=0.2)
    m.build(N_ITEMS)
    with torch.no_grad():  # weights spread like a trained model's, so attention is not uniform
        for p in m.parameters():
            if p.ndim == 2:
                p.normal_(0.0, 0.5)
    return m.train()  # explain must switch dropout off by itself


HISTORY = np.array([3, 17, 5, 29, 11, 2, 8])


def test_attention_rows_sum_to_one_and_never_look_ahead():
    m = model()
    w = attention_maps(m, HISTORY)
    assert w.shape == (2, 4, len(HISTORY), len(HISTORY))
    torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]), rtol=0, atol=1e-5)
    assert (w >= 0).all()
    assert float(torch.triu(w, diagonal=1).abs().max()) == 0.0  # no weight on future positions
    a = last_attention(m, HISTORY)
    np.testing.assert_allclose(a, w[-1, :, -1, :].mean(0).numpy())
    assert a.shape == (len(HISTORY),) and abs(a.sum() - 1) < 1e-5
    assert m.training  # the mode is restored


def test_attention_is_deterministic_despite_dropout_mode():
    m = model()
    np.testing.assert_array_equal(last_attention(m, HISTORY), last_attention(m, HISTORY))


@pytest.mark.parametrize("target", ["logprob", "logit"])
def test_leave_one_out_equals_brute_force_rescoring(target):
    m = model()
    item = 13
    got = leave_one_out(m, HISTORY, item, target=target)

    def value(h):
        with torch.no_grad():
            m.eval()
            s = m.score([h])[0].double().numpy()
        if target == "logit":
            return s[item]
        real = s[1:]
        return real[item - 1] - (real.max() + np.log(np.exp(real - real.max()).sum()))

    want = np.array([value(HISTORY) - value(np.delete(HISTORY, j)) for j in range(len(HISTORY))])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("target", ["logprob", "logit"])
def test_occlusion_equals_a_forward_pass_with_the_films_embedding_zeroed(target):
    """Masking film j: a plain forward pass written out here (item embeddings with row j zeroed,
    the positions 0..L-1 unchanged, the blocks, the final norm, the tied output) gives the
    masked score; the attribution is the full window's score minus it."""
    m = model().eval()
    item, length = 13, len(HISTORY)

    def value(zeroed: int | None):
        with torch.no_grad():
            ids = torch.as_tensor(HISTORY)
            x = m.embedding.item(ids).clone()
            if zeroed is not None:
                x[zeroed] = 0.0
            x = (x + m.embedding.position(torch.arange(length)))[None]
            for block in m.blocks:
                x = block(x, None)
            s = (m.ln_f(x)[0, -1] @ m.embedding.item.weight.T).double().numpy()
        if target == "logit":
            return s[item]
        real = s[1:]
        return real[item - 1] - (real.max() + np.log(np.exp(real - real.max()).sum()))

    got = occlusion(m.train(), HISTORY, item, target=target)
    assert m.training  # the mode is restored
    m.eval()
    want = np.array([value(None) - value(j) for j in range(length)])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # masking keeps the history's length and positions: it differs from deleting the film
    assert np.abs(got - leave_one_out(m, HISTORY, item, target=target)).max() > 1e-3


def test_long_histories_use_the_window_the_model_reads():
    m = model(max_len=5)
    history = np.arange(1, 13)
    np.testing.assert_array_equal(model_window(m, history), history[-5:])
    assert leave_one_out(m, history, 20).shape == (5,)
    assert last_attention(m, np.concatenate([[0, 0], history])).shape == (5,)  # padding ignored
    np.testing.assert_allclose(leave_one_out(m, history, 20), leave_one_out(m, history[-5:], 20), atol=1e-6)


def test_leave_one_out_of_a_linear_model_is_its_item_item_weight():
    # EASE scores are x_u B: removing item j lowers item i's score by exactly B[j, i]
    rng = np.random.default_rng(0)
    rows = [(u, int(i), t) for u in range(40)
            for t, i in enumerate(rng.choice(np.arange(1, N_ITEMS + 1), 10, replace=False))]
    split = loo_split(Interactions.from_frame(pd.DataFrame(rows, columns=["user", "item", "timestamp"])))
    ease = EASE(l2=5.0).fit(split)
    history = split.histories("test")[0]
    item = int(np.setdiff1d(np.arange(1, split.n_items + 1), history)[0])
    got = leave_one_out(ease, history, item, target="logit")
    np.testing.assert_allclose(got, ease.weights.numpy()[history, item], rtol=1e-4, atol=1e-6)


def test_agreement_is_spearman():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=20), rng.normal(size=20)
    ra, rb = stats.rankdata(a), stats.rankdata(b)
    assert agreement(a, b) == pytest.approx(np.corrcoef(ra, rb)[0, 1])
    assert agreement(a, 2 * a + 1) == pytest.approx(1.0)
    assert np.isnan(agreement(a, np.ones(20)))


def test_bad_inputs_are_clear_errors():
    m = model()
    with pytest.raises(ValueError, match="at least two"):
        leave_one_out(m, [4], 3)
    with pytest.raises(ValueError, match="real item id"):
        leave_one_out(m, HISTORY, 0)
    with pytest.raises(ValueError, match="no real item"):
        attention_maps(m, [0, 0])
    with pytest.raises(ValueError, match="target"):
        leave_one_out(m, HISTORY, 3, target="prob")
    with pytest.raises(ValueError, match="equal length"):
        agreement([1, 2, 3], [1, 2])
