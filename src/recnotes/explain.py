"""Which history items drove a recommendation: attention weights and leave-one-out.

Two answers for a sequence model and one recommended item:

* :func:`last_attention`: the weights with which GPTRec's last layer, at the
  last position (the one that predicts), attends to each history item,
  averaged over heads.  Cheap, read off one forward pass, and often shown as
  "the explanation";
* :func:`leave_one_out`: drop each history item in turn, score again, and
  take the drop in the recommended item's log-probability (or logit).  It
  measures what each item actually changes in the output, at the cost of one
  forward pass per item (here batched into one).  Dropping an item also moves
  every later item one position earlier and shortens the history;
* :func:`occlusion`: the same with the item *masked* instead: its embedding is
  left out while every position stays where it was, so only the film's identity
  is taken away.

Both attributions have one sign: the recommended item's score with the film
minus its score without it (positive: the film pushed the recommendation up).

Both work on the *window* the model reads: the last ``max_len`` items of the
history (:func:`model_window`), so position ``j`` means the same item in both.
:func:`agreement` compares the two rankings of the items.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from scipy import stats

from .data.interactions import PAD
from .data.splits import pad_sequences

__all__ = ["model_window", "attention_maps", "last_attention", "leave_one_out", "occlusion", "agreement"]


def model_window(model, history: Sequence[int]) -> np.ndarray:
    """The items the model reads: the real items of ``history``, its last ``max_len``
    for a model with a ``max_len`` (the whole history otherwise)."""
    h = np.asarray(history, np.int64).ravel()
    h = h[h != PAD]
    max_len = getattr(model, "max_len", None)
    return h[-max_len:] if max_len else h


@torch.no_grad()
def attention_maps(model, history: Sequence[int]) -> torch.Tensor:
    """GPTRec's attention weights over its window, ``[layers, heads, L, L]`` (query, key),
    from :meth:`GPTRec.hidden` with ``return_attention=True`` (dropout off)."""
    window = model_window(model, history)
    if len(window) == 0:
        raise ValueError("the history has no real item")
    was_training = model.training
    model.eval()
    seqs = pad_sequences([window], len(window)).to(model.device)
    _, weights = model.hidden(seqs, return_attention=True)
    model.train(was_training)
    return torch.stack([w[0] for w in weights]).float().cpu()


def last_attention(model, history: Sequence[int], layer: int = -1) -> np.ndarray:
    """Attention of ``layer`` (default: the last) from the last position to each window
    item, averaged over heads: ``[L]``, non-negative, summing to 1."""
    return attention_maps(model, history)[layer, :, -1, :].mean(0).numpy()


def _target_values(scores: torch.Tensor, item: int, target: str) -> np.ndarray:
    scores = scores.float()
    if target == "logit":
        return scores[:, item].cpu().numpy()
    if target == "logprob":  # over the real items (column 0 is padding)
        return scores[:, 1:].log_softmax(dim=1)[:, item - 1].cpu().numpy()
    raise ValueError(f"target must be 'logprob' or 'logit', not {target!r}")


def _checked_window(model, history: Sequence[int], item: int, least: int, too_short: str) -> np.ndarray:
    """The window the model reads (:func:`model_window`), after checking that it holds at least
    ``least`` items (else ``too_short``) and that ``item`` is a real item id."""
    window = model_window(model, history)
    if len(window) < least:
        raise ValueError(too_short)
    n_items = getattr(model, "n_items", None)
    if not 1 <= int(item) <= (n_items or int(item)):
        raise ValueError(f"item must be a real item id in 1..{n_items}, not {item}")
    return window


@torch.no_grad()
def leave_one_out(model, history: Sequence[int], item: int, target: str = "logprob") -> np.ndarray:
    """Attribution ``[L]`` of each window item to ``item``: its score with the whole
    window minus its score with that one item removed (``target`` = ``"logprob"``,
    the log-softmax over the catalogue, or ``"logit"``).  Positive: the item pushed
    the recommendation up.  All ``L`` shortened windows are scored in one batch."""
    window = _checked_window(model, history, item, 2, "leave-one-out needs at least two history items")
    dropped = [np.delete(window, j) for j in range(len(window))]
    scores = torch.as_tensor(model.score([window] + dropped))
    values = _target_values(scores, int(item), target)
    return values[0] - values[1:]


@torch.no_grad()
def occlusion(model, history: Sequence[int], item: int, target: str = "logprob") -> np.ndarray:
    """Attribution ``[L]`` of each window item to ``item`` by masking: its score with the whole
    window minus its score with that one item's embedding left out, every position kept
    (``target`` as in :func:`leave_one_out`).  Positive: the item pushed the recommendation
    up.  The window and its ``L`` masked copies are scored in one batch."""
    window = _checked_window(model, history, item, 1, "the history has no real item")
    was_training = model.training
    model.eval()
    length = len(window)
    seqs = torch.as_tensor(np.tile(window, (length + 1, 1)), device=model.device)
    occlude = torch.zeros((length + 1, length), dtype=torch.bool, device=model.device)
    occlude[torch.arange(1, length + 1), torch.arange(length)] = True  # row j + 1 masks item j
    weight, bias = model.output_layer()
    scores = model.hidden(seqs, occlude=occlude)[:, -1] @ weight.T
    if bias is not None:
        scores = scores + bias
    model.train(was_training)
    values = _target_values(scores, int(item), target)
    return values[0] - values[1:]


def agreement(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation between two attributions of the same items
    (NaN when either is constant)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"need two 1-D attributions of equal length >= 2, got {a.shape} and {b.shape}")
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(stats.spearmanr(a, b).statistic)
