"""Log-likelihood of continuations after a shared prompt, with and without a KV cache.

The likelihood ranker asks: how probable is each candidate's title as the
model's answer to the prompt?  All candidates share the same prompt, so the
fast path encodes the prompt once, copies its key/value cache over the batch
of candidates, and scores every candidate's tokens in one right-padded pass.
Positions continue after the prompt (``P, P+1, ...``) for every row, and the
attention mask is ones over the prompt followed by each row's own token mask;
with right padding the causal mask already keeps real tokens from seeing the
padding after them, so padded positions only produce logits that are dropped.

:func:`score_naive` is the slow reference: one full ``prompt + continuation``
sequence per candidate, no cache.  Both return the summed log-probability of
each continuation's tokens and the number of tokens, so the mean per token
(the length-normalised score) is ``sums / lengths``.
"""

from __future__ import annotations

import functools
import inspect
from typing import Sequence

import numpy as np
import torch

__all__ = ["score_shared_prefix", "score_naive", "pad_right"]


def pad_right(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token lists into ``ids [n, L]`` and a 0/1 ``mask [n, L]``."""
    length = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), length), dtype=torch.long)
    for row, s in enumerate(seqs):
        ids[row, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
        mask[row, : len(s)] = 1
    return ids, mask


def _forward(model: torch.nn.Module, cache=None, keep: int = 0, **inputs):
    """Call the model across transformers versions (``cache=`` is the 5.x name of
    ``past_key_values=``); ``keep > 0`` computes only the last ``keep`` positions' logits."""
    params = _forward_params(type(model))
    if cache is not None:
        inputs["cache" if "cache" in params else "past_key_values"] = cache
    if keep and "logits_to_keep" in params:
        inputs["logits_to_keep"] = keep
    out = model(**inputs)
    new_cache = out.get("cache" if "cache" in params else "past_key_values")
    logits = out.logits[:, -keep:] if keep else out.logits
    return logits, new_cache


@functools.lru_cache(maxsize=None)
def _forward_params(cls: type) -> frozenset[str]:
    return frozenset(inspect.signature(cls.forward).parameters)


def _token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``log softmax(logits)[..., target]`` in float32."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)


@torch.no_grad()
def score_shared_prefix(model: torch.nn.Module, prefix: Sequence[int],
                        continuations: Sequence[Sequence[int]], device: torch.device,
                        pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Summed log-probabilities and lengths of ``continuations`` after ``prefix``, sharing its KV cache."""
    if len(prefix) == 0:
        raise ValueError("the prompt prefix is empty: there is nothing to condition on")
    n = len(continuations)
    prefix_ids = torch.tensor([list(prefix)], dtype=torch.long, device=device)
    last, cache = _forward(model, input_ids=prefix_ids, use_cache=True, keep=1)
    first = torch.log_softmax(last[0, -1].float(), dim=-1)  # next-token distribution
    cache.batch_repeat_interleave(n)  # [1, ...] -> [n, ...], shared by every candidate

    ids, mask = pad_right(continuations, pad_id)
    ids, mask = ids.to(device), mask.to(device)
    p, length = prefix_ids.shape[1], ids.shape[1]
    attention = torch.cat([torch.ones((n, p), dtype=mask.dtype, device=device), mask], dim=1)
    positions = torch.arange(p, p + length, device=device).unsqueeze(0).expand(n, -1)
    logits, _ = _forward(model, cache=cache, input_ids=ids, attention_mask=attention,
                         position_ids=positions, use_cache=True)  # [n, L, V]

    token_lp = torch.empty((n, length), dtype=torch.float32, device=device)
    token_lp[:, 0] = first[ids[:, 0]]
    if length > 1:
        token_lp[:, 1:] = _token_logprobs(logits[:, :-1], ids[:, 1:])
    sums = (token_lp * mask).sum(dim=1)
    return sums.double().cpu().numpy(), mask.sum(dim=1).cpu().numpy().astype(np.float64)


@torch.no_grad()
def score_naive(model: torch.nn.Module, prefix: Sequence[int],
                continuations: Sequence[Sequence[int]], device: torch.device,
                pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The reference: each continuation scored with its own full prompt, one at a time."""
    if len(prefix) == 0:
        raise ValueError("the prompt prefix is empty: there is nothing to condition on")
    sums, lengths = [], []
    p = len(prefix)
    for cont in continuations:
        ids = torch.tensor([list(prefix) + list(cont)], dtype=torch.long, device=device)
        logits, _ = _forward(model, input_ids=ids, use_cache=False, keep=len(cont) + 1)
        lp = _token_logprobs(logits[0, :-1], ids[0, p:])  # logits at positions P-1 .. P+L-2
        sums.append(float(lp.double().sum()))
        lengths.append(len(cont))
    return np.asarray(sums, dtype=np.float64), np.asarray(lengths, dtype=np.float64)
