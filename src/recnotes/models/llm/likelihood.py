"""Log-likelihood of continuations after a prompt: packed, with a shared KV cache, and naive.

The likelihood ranker asks: how probable is each candidate's title as the
model's answer to the prompt?  All candidates share the same prompt, so the
fast path encodes the prompt once, copies its key/value cache over the batch
of candidates, and scores every candidate's tokens in one right-padded pass.
Positions continue after the prompt (``P, P+1, ...``) for every row, and the
attention mask is ones over the prompt followed by each row's own token mask;
with right padding the causal mask already keeps real tokens from seeing the
padding after them, so padded positions only produce logits that are dropped.

:func:`score_packed` is the fastest, and batches several users: each user's
prompt and all of their candidates go into one row, ``[prompt, c1, c2, ...]``,
with a block attention mask (the prompt is causal; each candidate sees the
prompt and its own earlier tokens, never another candidate) and positions
that restart after the prompt for every candidate.  Every token is computed
once: no cache is copied per candidate, no candidate is padded to the longest
one, a candidate's last token is not fed (its state would predict nothing that
is scored), and the output layer runs only where a log-probability is read
(the prompt's last token once, and each candidate's fed tokens), on a CPU over blocks
of the vocabulary (:func:`head_logprobs`).  Several users' rows form one batch,
right-padded.

:func:`score_naive` is the slow reference: one full ``prompt + continuation``
sequence per candidate, no cache.  All return the summed log-probability of
each continuation's tokens and the number of tokens, so the mean per token
(the length-normalised score) is ``sums / lengths``.

:class:`LowerLayers` lets models that differ only in their top blocks (LoRA
adapters on the upper layers of one base model) share the bottom blocks' work:
the packed scorer keeps the bottom blocks' output per packed input, and the
next model that scores the same prompts and candidates runs its top blocks
only.  The arithmetic is the same, so the scores are the same.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["score_shared_prefix", "score_naive", "score_packed", "pad_right", "decoder_and_head", "LowerLayers",
           "mask_as", "mask_to", "sliding_window", "head_logprobs"]


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


#: the vocabulary is read by the output layer this many words at a time (:func:`head_logprobs`):
#: a block of float32 logits stays in the core's cache
HEAD_COLUMNS = 1024


def _head_blocks(states, weight, bias, columns):
    """Yield ``(j, logits of words j..j+columns)`` in float32."""
    for j in range(0, len(weight), columns):
        yield j, F.linear(states, weight[j:j + columns], None if bias is None else bias[j:j + columns]).float()


def _picked_and_lse(states, weight, bias, targets, columns):
    """Each row's target logit and log-sum-exp, computed over blocks of the vocabulary with a
    running maximum (the log-sum-exp of the blocks' log-sum-exps)."""
    n = len(states)
    peak = torch.full((n,), -math.inf, device=states.device)
    total = torch.zeros(n, device=states.device)
    picked = torch.zeros(n, device=states.device)
    for j, logits in _head_blocks(states, weight, bias, columns):
        top = torch.maximum(peak, logits.amax(1))
        total = total * torch.exp(peak - top) + torch.exp(logits - top[:, None]).sum(1)
        peak = top
        inside = (targets >= j) & (targets < j + len(logits[0]))
        picked += torch.where(inside, logits.gather(1, (targets - j).clamp(0, len(logits[0]) - 1)[:, None])[:, 0], 0.0)
    return picked, peak + torch.log(total)


class _HeadLogprobs(torch.autograd.Function):
    """:func:`head_logprobs` with its gradient to the states computed block by block too: each
    block's logits are computed again in the backward pass instead of being kept."""

    @staticmethod
    def forward(ctx, states, weight, bias, targets, columns):
        picked, lse = _picked_and_lse(states, weight, bias, targets, columns)
        ctx.save_for_backward(states, weight, bias, targets, lse)
        kind = states.device.type
        ctx.columns = columns
        ctx.amp = (kind, torch.get_autocast_dtype(kind), torch.is_autocast_enabled(kind))
        return picked - lse

    @staticmethod
    def backward(ctx, grad_out):
        states, weight, bias, targets, lse = ctx.saved_tensors
        kind, amp_dtype, amp = ctx.amp
        grad = torch.zeros(states.shape, dtype=torch.float32, device=states.device)
        with torch.autocast(kind, dtype=amp_dtype, enabled=amp):  # the products as in forward
            for j, logits in _head_blocks(states, weight, bias, ctx.columns):
                # d log p(target) / d logits = onehot(target) - softmax, times the incoming gradient
                g = torch.exp(logits - lse[:, None]).mul_(-grad_out[:, None])
                inside = ((targets >= j) & (targets < j + len(g[0]))).nonzero()[:, 0]
                g[inside, targets[inside] - j] += grad_out[inside]
                w = weight[j:j + len(g[0])]
                grad += torch.mm(g.to(w.dtype), w).float()  # autocast, when on, sets the product's dtype
        return grad.to(states.dtype), None, None, None, None


def head_logprobs(head: torch.nn.Module, states: torch.Tensor, targets: torch.Tensor,
                  columns: int | None = None) -> torch.Tensor:
    """``log softmax(head(states))[target]`` for each row of ``states [n, d]``, in float32.

    On a CPU the output layer (a ``Linear`` over the vocabulary) runs :data:`HEAD_COLUMNS` words
    at a time with a running log-sum-exp, so the logits of every row over the whole vocabulary
    are never written: in bf16 about half the time of ``log_softmax(head(states).float())``
    (``python -m recnotes.bench llm``), whose result it equals to float32 rounding.
    Differentiable with respect to ``states``: the backward pass computes each block's logits
    again, which pays in bf16 and not in float32, so a float32 head with a gradient to compute
    takes the plain path, as do a GPU, a head that is not a plain ``Linear``, one whose weights
    train, and ``columns`` (default :data:`HEAD_COLUMNS`) 0."""
    if len(states) != len(targets):
        raise ValueError(f"{len(states)} states but {len(targets)} targets")
    columns = HEAD_COLUMNS if columns is None else columns
    trains = any(p.requires_grad for p in head.parameters())
    grad = torch.is_grad_enabled() and (states.requires_grad or trains)
    if (columns <= 0 or type(head) is not torch.nn.Linear or states.device.type != "cpu"
            or (grad and (trains or head.weight.dtype == torch.float32))):
        logits = head(states)
        return -F.cross_entropy(logits.float(), targets, reduction="none") if grad else _token_logprobs(logits, targets)
    if grad:
        return _HeadLogprobs.apply(states, head.weight, head.bias, targets, columns)
    picked, lse = _picked_and_lse(states, head.weight, head.bias, targets, columns)
    return picked - lse


@functools.lru_cache(maxsize=None)
def _forward_params(cls: type) -> frozenset[str]:
    return frozenset(inspect.signature(cls.forward).parameters)


def _token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``log softmax(logits)[..., target]`` in float32, as the target's logit less the
    log-sum-exp of its row (the whole log-softmax table is never written)."""
    logits = logits.float()
    return logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


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


def decoder_and_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The transformer body (hidden states) and the output layer of a causal LM, also when it is
    wrapped by peft (whose adapters live inside the body and are used)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder(), base.get_output_embeddings()


class LowerLayers:
    """The output of a decoder's bottom ``n`` blocks, kept per packed input (token ids and
    positions), for models whose bottom ``n`` blocks are equal: scoring the same prompts and
    candidates with several LoRA adapters on the top blocks runs the bottom blocks once.

    Each decoder that uses it is checked once: its bottom blocks must hold the same weights as
    the first one's (a fingerprint of their parameters), otherwise :class:`ValueError`.
    """

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, not {n}")
        self.n = n
        self.store: dict[str, torch.Tensor] = {}
        self.hits = 0
        self.misses = 0
        self._fingerprint: tuple | None = None
        self._checked: set[int] = set()

    def check(self, decoder: torch.nn.Module) -> None:
        """Raise unless ``decoder`` has the layout and the bottom weights this store was made with."""
        if id(decoder) in self._checked:
            return
        if not (hasattr(decoder, "layers") and hasattr(decoder, "norm")):
            raise TypeError(f"{type(decoder).__name__} has no .layers and .norm: its blocks cannot be split")
        if self.n >= len(decoder.layers):
            raise ValueError(f"cannot share {self.n} bottom blocks of a model with {len(decoder.layers)}")
        with torch.no_grad():
            params = [decoder.get_input_embeddings().weight, *decoder.layers[:self.n].parameters()]
            fingerprint = tuple(float(p.double().sum()) for p in params)
        if self._fingerprint is None:
            self._fingerprint = fingerprint
        elif fingerprint != self._fingerprint:
            raise ValueError("this model's bottom blocks differ from those the shared states were computed with")
        self._checked.add(id(decoder))

    @staticmethod
    def key(ids: torch.Tensor, pos: torch.Tensor) -> str:
        h = hashlib.sha256(str(tuple(ids.shape)).encode())
        h.update(ids.cpu().numpy().tobytes())
        h.update(pos.cpu().numpy().tobytes())
        return h.hexdigest()


def mask_to(mask, device: torch.device):
    """A mask, or a mask per kind of layer, on ``device``."""
    return {k: m.to(device) for k, m in mask.items()} if isinstance(mask, dict) else mask.to(device)


@contextlib.contextmanager
def _blocks(decoder: torch.nn.Module, start: int, stop: int | None, norm: torch.nn.Module):
    """Run ``decoder`` with its blocks ``start:stop`` only and another final norm for a while.
    A decoder that looks up each block's kind of attention by its index in the config
    (Gemma 3's ``layer_types``) sees the same slice of that list."""
    config = getattr(decoder, "config", None)
    types = getattr(config, "layer_types", None)
    old = decoder.layers, decoder.norm
    decoder.layers, decoder.norm = old[0][start:stop], norm
    if types is not None:
        config.layer_types = list(types)[start:stop]
    try:
        yield
    finally:
        decoder.layers, decoder.norm = old
        if types is not None:
            config.layer_types = types


def _decode(decoder: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor,
            lower: LowerLayers | None = None) -> torch.Tensor:
    """The decoder's last hidden states; with ``lower``, its bottom blocks' output is reused."""
    if lower is None:
        return decoder(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False).last_hidden_state
    lower.check(decoder)
    key = lower.key(ids, pos)
    hidden = lower.store.get(key)
    if hidden is None:
        lower.misses += 1
        with _blocks(decoder, 0, lower.n, torch.nn.Identity()):
            hidden = decoder(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False).last_hidden_state
        lower.store[key] = hidden
    else:
        lower.hits += 1
    with _blocks(decoder, lower.n, None, decoder.norm):
        return decoder(inputs_embeds=hidden, attention_mask=mask, position_ids=pos, use_cache=False).last_hidden_state


def _packed_rows(batch: Sequence[tuple[Sequence[int], Sequence[Sequence[int]]]]):
    """Each user's packed row: its prompt, then every continuation but its last token (whose
    state is never read); returns ``(ids, positions, prompt length, spans)`` per row, a span
    being ``(start, number of input tokens)`` of one continuation."""
    rows = []
    for prefix, conts in batch:
        if len(prefix) == 0:
            raise ValueError("the prompt prefix is empty: there is nothing to condition on")
        if any(len(c) == 0 for c in conts):
            raise ValueError("every continuation needs at least one token")
        ids, pos, spans = list(prefix), list(range(len(prefix))), []
        for c in conts:
            fed = list(c[:-1])
            spans.append((len(ids), len(fed)))
            ids += fed
            pos += range(len(prefix), len(prefix) + len(fed))
        rows.append((ids, pos, len(prefix), spans))
    return rows


def sliding_window(model: torch.nn.Module | None) -> int | None:
    """The attention window of a model whose layers mix sliding-window and full attention
    (Gemma 3: five sliding layers of 512 tokens to one full), else ``None``."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(base, "config", None)
    window = getattr(config, "sliding_window", None)
    if window and "sliding_attention" in (getattr(config, "layer_types", None) or ()):
        return int(window)
    return None


def mask_as(allow: torch.Tensor, model: torch.nn.Module | None, dtype: torch.dtype,
            positions: torch.Tensor | None = None) -> torch.Tensor | dict[str, torch.Tensor]:
    """A ``[B, L, L]`` table of allowed (query, key) pairs as the model's attention takes it:
    boolean for PyTorch's fused attention (``sdpa``), whose CPU kernel runs about 1.6 times as
    fast with it as with an additive float mask of the same pairs, additive elsewhere (and
    without a model).

    A model with sliding-window layers (:func:`sliding_window`) gets one mask per kind of
    layer, as its decoder takes them: ``{"full_attention": ..., "sliding_attention": ...}``,
    the second also hiding every key ``window`` or more ``positions [B, L]`` before its query
    (as the model's own mask does in one unpacked sequence)."""
    window = sliding_window(model)
    if window is not None:
        if positions is None:
            raise ValueError("a model with sliding-window attention needs the tokens' positions for its mask")
        near = (positions[:, :, None] - positions[:, None, :]) < window
        return {"full_attention": _as(allow, model, dtype),
                "sliding_attention": _as(allow & near.to(allow.device), model, dtype)}
    return _as(allow, model, dtype)


def _as(allow: torch.Tensor, model: torch.nn.Module | None, dtype: torch.dtype) -> torch.Tensor:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if getattr(getattr(base, "config", None), "_attn_implementation", None) == "sdpa":
        return allow[:, None]
    return torch.zeros(allow.shape, dtype=dtype).masked_fill_(~allow, torch.finfo(dtype).min)[:, None]


def packed_mask(rows, length: int, dtype: torch.dtype, model: torch.nn.Module | None = None,
                positions: torch.Tensor | None = None) -> torch.Tensor | dict[str, torch.Tensor]:
    """The ``[B, 1, L, L]`` block mask of packed rows (see :func:`mask_as`; additive without a
    model).  A row is ``(tokens, main, spans)``: its first ``main`` tokens see each other
    causally, and each span ``(start, size, sees)`` sees the row's first ``sees`` tokens and
    itself, causally; padding sees itself only (no empty softmax row).  (Attention computed block
    by block, without the masked pairs, was slower than this dense mask on a CPU, at the prompt
    lengths of the book.)"""
    allow = torch.zeros((len(rows), length, length), dtype=torch.bool)
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    for r, (n_ids, main, spans) in enumerate(rows):
        allow[r, :main, :main] = causal[:main, :main]
        for start, size, sees in spans:
            allow[r, start:start + size, :sees] = True
            allow[r, start:start + size, start:start + size] = causal[:size, :size]
        pad = torch.arange(n_ids, length)
        allow[r, pad, pad] = True
    return mask_as(allow, model, dtype, positions)


def _dense_mask(rows, length: int, dtype: torch.dtype, model: torch.nn.Module | None = None,
                positions: torch.Tensor | None = None) -> torch.Tensor | dict[str, torch.Tensor]:
    """:func:`packed_mask` of :func:`_packed_rows`' rows: every continuation sees its prompt."""
    return packed_mask([(len(ids), p, [(start, size, p) for start, size in spans]) for ids, _, p, spans in rows],
                       length, dtype, model, positions)


@torch.no_grad()
def score_packed(model: torch.nn.Module, batch: Sequence[tuple[Sequence[int], Sequence[Sequence[int]]]],
                 device: torch.device, pad_id: int = 0,
                 lower: LowerLayers | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each ``(prefix, continuations)`` of ``batch`` (one user each), the summed log-probabilities
    and lengths of the continuations after the prefix, all users in one packed forward pass
    (reusing the bottom blocks' output kept in ``lower``, when given)."""
    if len(batch) == 0:
        return []
    decoder, head = decoder_and_head(model)
    dtype = next(model.parameters()).dtype
    rows = _packed_rows(batch)
    length = max(len(r[0]) for r in rows)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    pos = torch.zeros((len(rows), length), dtype=torch.long)
    for r, (row_ids, row_pos, _, _) in enumerate(rows):
        ids[r, :len(row_ids)] = torch.tensor(row_ids)
        pos[r, :len(row_pos)] = torch.tensor(row_pos)
    ids, pos = ids.to(device), pos.to(device)
    mask = mask_to(_dense_mask(rows, length, dtype, model, pos), device)
    hidden = _decode(decoder, ids, mask, pos, lower)
    # the output layer runs on each prompt's last state once, and on every fed candidate token
    first = head(hidden[torch.arange(len(rows), device=device), torch.tensor([r[2] - 1 for r in rows], device=device)])
    first_lp = torch.log_softmax(first.float(), dim=-1)
    where_row, where_col, targets = [], [], []
    for r, ((prefix, conts), (_, _, _, spans)) in enumerate(zip(batch, rows)):
        for c, (start, size) in zip(conts, spans):
            where_row += [r] * size
            where_col += range(start, start + size)
            targets += list(c[1:])
    rest = torch.empty(0, dtype=torch.float64)
    if targets:
        selected = hidden[torch.tensor(where_row, device=device), torch.tensor(where_col, device=device)]
        rest = head_logprobs(head, selected, torch.tensor(targets, device=device)).double().cpu()
    out, cursor = [], 0
    for r, ((prefix, conts), (_, _, _, spans)) in enumerate(zip(batch, rows)):
        firsts = first_lp[r, torch.tensor([c[0] for c in conts], device=device)].double().cpu()
        sums = np.empty(len(conts))
        for k, (_, size) in enumerate(spans):
            sums[k] = float(firsts[k]) + float(rest[cursor:cursor + size].sum())
            cursor += size
        out.append((sums, np.asarray([len(c) for c in conts], dtype=np.float64)))
    return out
