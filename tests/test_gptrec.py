"""GPTRec: causality, padding, attention by hand, generation against brute force, errors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from recnotes.data.splits import pad_sequences
from recnotes.models import GPTRec, LSTM
from recnotes.models.gptrec import attention_mask

torch.set_num_threads(1)
N_ITEMS = 9


def built(model_cls=GPTRec, seed: int = 0, **kw):
    torch.manual_seed(seed)
    defaults = dict(dim=16, n_layers=2, n_heads=4, max_len=12, dropout=0.1) if model_cls is GPTRec else \
        dict(embedding_dim=8, hidden=12, max_len=12, dropout=0.1)
    model = model_cls(**{**defaults, **kw})
    model.build(N_ITEMS)
    return model.eval()


@pytest.mark.parametrize("model_cls", [GPTRec, LSTM])
def test_no_future_item_influences_earlier_positions(model_cls):
    model = built(model_cls)
    seqs = torch.tensor([[0, 0, 3, 1, 4, 1, 5, 9, 2, 6, 5, 3],
                         [0, 0, 0, 0, 0, 2, 7, 1, 8, 2, 8, 1]])
    with torch.no_grad():
        base = model(seqs)
        for t in range(5, 12):
            changed = seqs.clone()
            changed[:, t] = (changed[:, t] % N_ITEMS) + 1  # another real item
            out = model(changed)
            torch.testing.assert_close(out[:, :t], base[:, :t], rtol=0, atol=1e-5)
            assert not torch.allclose(out[:, t], base[:, t])  # ... but position t itself sees it


@pytest.mark.parametrize("model_cls", [GPTRec, LSTM])
def test_every_position_equals_its_prefix_read_alone(model_cls):
    # training reads all positions in one pass; inference reads one prefix: they must agree
    model = built(model_cls)
    seq = [3, 1, 4, 1, 5, 9, 2, 6]
    with torch.no_grad():
        full = model(torch.tensor([seq]))[0]
        for t in range(1, len(seq) + 1):
            alone = model.last_logits(pad_sequences([seq[:t]], model.max_len))[0]
            torch.testing.assert_close(full[t - 1], alone, rtol=0, atol=1e-5)


@pytest.mark.parametrize("model_cls", [GPTRec, LSTM])
def test_scores_do_not_depend_on_padding(model_cls):
    model = built(model_cls)
    history = [4, 2, 7, 1]
    short = pad_sequences([history], 4)
    long = pad_sequences([history], 12)
    with torch.no_grad():
        torch.testing.assert_close(model.last_logits(short), model.last_logits(long), rtol=0, atol=1e-5)


def test_attention_weights_match_a_hand_written_formula():
    model = built()
    seqs = torch.tensor([[0, 0, 0, 5, 3, 8, 1, 2]])
    with torch.no_grad():
        logits, weights = model(seqs, return_attention=True)
        block = model.blocks[0]
        x = block.ln1(model.embedding(seqs))
        attn = block.attn
        qkv = x @ attn.qkv.weight.T + attn.qkv.bias
        q, k, v = qkv.split(16, dim=-1)
        length, heads, dh = seqs.shape[1], 4, 4
        outs = []
        for h in range(heads):
            qh, kh, vh = (m[0, :, h * dh:(h + 1) * dh] for m in (q, k, v))
            s = qh @ kh.T / math.sqrt(dh)
            for i in range(length):
                for j in range(length):
                    visible = (j <= i and seqs[0, j] != 0) or i == j
                    if not visible:
                        s[i, j] = -float("inf")
            w = torch.softmax(s, dim=-1)
            torch.testing.assert_close(weights[0][0, h], w, rtol=1e-5, atol=1e-6)
            outs.append(w @ vh)
        by_hand = torch.cat(outs, dim=-1) @ attn.out.weight.T + attn.out.bias
        torch.testing.assert_close(attn(x, attention_mask(seqs)), by_hand[None], rtol=1e-4, atol=1e-5)
    assert len(weights) == 2
    real = weights[1][0, :, 3:, :]
    torch.testing.assert_close(real.sum(-1), torch.ones_like(real.sum(-1)))
    assert torch.all(torch.triu(weights[1][0], diagonal=1) == 0)
    assert logits.shape == (1, 8, N_ITEMS + 1)


def test_output_layer_is_tied_to_item_embedding():
    model = built()
    seqs = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        h = model.hidden(seqs)
        torch.testing.assert_close(model(seqs), h @ model.embedding.item.weight.T)
    names = [n for n, _ in model.named_parameters()]
    assert not any("output" in n or "head" in n for n in names)


def test_recommend_masks_history_and_padding():
    model = built()
    history = [3, 5, 1]
    rec = model.recommend(history, k=N_ITEMS - len(history))
    assert sorted(rec) == sorted(set(range(1, N_ITEMS + 1)) - set(history))
    scores = model.score([np.array(history)])[0]
    unseen = [i for i in range(1, N_ITEMS + 1) if i not in history]
    assert rec[0] == unseen[int(torch.argmax(scores[unseen]))]


def test_greedy_generation_is_repeated_recommendation():
    model = built()
    history = [2, 7]
    generated = model.generate(history, steps=4)
    seq = list(history)
    for item in generated:
        assert item == model.recommend(seq, k=1)[0]
        seq.append(int(item))
    assert len(set(generated)) == 4 and not set(generated) & set(history)


def test_exhaustive_beam_equals_brute_force_best_continuation():
    model = built(seed=3)
    history = [4, 1, 6]
    allowed = [i for i in range(1, N_ITEMS + 1) if i not in history]
    best, best_path = -float("inf"), None
    with torch.no_grad():
        for path in itertools.permutations(allowed, 2):
            total = 0.0
            for step in range(2):
                seq = pad_sequences([history + list(path[:step])], model.max_len)
                total += float(model.last_logits(seq)[0].log_softmax(-1)[path[step]])
            if total > best:
                best, best_path = total, path
    beam = model.generate(history, steps=2, beam=N_ITEMS * N_ITEMS)
    assert tuple(beam) == best_path


@pytest.mark.parametrize("kwargs,match", [
    (dict(dim=10, n_heads=3), "divide"),
    (dict(max_len=1), "max_len"),
    (dict(n_layers=0), "n_layers"),
    (dict(dropout=1.0), "dropout"),
])
def test_bad_configuration_is_a_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GPTRec(**kwargs)


def test_too_long_input_is_rejected():
    model = built(max_len=4)
    with pytest.raises(ValueError, match="max_len"):
        model(torch.ones(1, 5, dtype=torch.long))
