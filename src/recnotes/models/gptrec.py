"""GPTRec: a decoder-only transformer over item sequences, as GPT is over words.

The math chapter derives each piece; each is its own module here so the
chapter can check it by hand:

* :class:`ItemPositionEmbedding`: ``e_t = W_e[item_t] + P[t]`` (one-hot x W_e is a row lookup);
* :class:`CausalSelfAttention`: ``softmax(Q K^T / sqrt(d_h) + M) V`` with a causal mask
  ``M``, through PyTorch's ``scaled_dot_product_attention`` (fused kernels on CUDA);
  ``return_attention=True`` also computes the weights explicitly;
* :class:`FeedForward`: ``W_2 GELU(W_1 x)``;
* :class:`Block`: pre-LayerNorm residual block ``x + Attn(LN(x))``, then ``x + FFN(LN(x))``;
* output: the final hidden state times the item embedding matrix (tied weights).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.interactions import PAD
from ..data.splits import pad_sequences
from .base import SequenceRecommender, check_histories
from .kernels import Dropout

__all__ = ["GPTRec", "ItemPositionEmbedding", "CausalSelfAttention", "FeedForward", "Block"]


class ItemPositionEmbedding(nn.Module):
    """Item embedding plus learned absolute position embedding, then dropout."""

    def __init__(self, n_items: int, dim: int, max_len: int, dropout: float) -> None:
        super().__init__()
        self.item = nn.Embedding(n_items + 1, dim, padding_idx=PAD)
        self.position = nn.Embedding(max_len, dim)
        self.dropout = Dropout(dropout)

    def forward(self, seqs: torch.Tensor, occlude: torch.Tensor | None = None) -> torch.Tensor:
        """``[b, L]`` left-padded item ids -> ``[b, L, dim]``.

        An item's position is its index among the window's real items (0 for the
        first), so a prefix gets the same positions whether it is read alone or
        inside a longer sequence, and padding changes nothing.  ``occlude`` (``[b, L]``
        bool): those items' embeddings are left out (zero) while every position stays
        where it was (masking a film, not deleting it).
        """
        positions = ((seqs != PAD).cumsum(dim=1) - 1).clamp(min=0)
        items = self.item(seqs)
        if occlude is not None:
            items = items.masked_fill(occlude[..., None], 0.0)
        return self.dropout(items + self.position(positions))


def attention_mask(seqs: torch.Tensor) -> torch.Tensor:
    """Boolean ``[b, 1, L, L]`` mask, True where query ``t`` may attend to key ``s``:
    ``s <= t`` and ``s`` is a real item (a padding query attends to itself only,
    so its row is never empty)."""
    length = seqs.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=seqs.device).tril()
    real = (seqs != PAD)[:, None, None, :]
    eye = torch.eye(length, dtype=torch.bool, device=seqs.device)
    return (causal & real) | eye


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with one fused Q/K/V projection."""

    def __init__(self, dim: int, n_heads: int, dropout: float, attn_dropout: float = 0.0) -> None:
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"n_heads ({n_heads}) must divide the width dim ({dim})")
        self.n_heads = n_heads
        self.head_dim = dim // n_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.attn_dropout = attn_dropout  # on the weights; > 0 rules out fused kernels on the CPU
        self.dropout = Dropout(dropout)

    def split_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``[b, L, dim]`` -> Q, K, V each ``[b, heads, L, head_dim]``."""
        b, length, _ = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return q, k, v

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                return_attention: bool = False):
        """Attend causally; ``mask`` (see :func:`attention_mask`) also hides padding.

        With ``return_attention`` returns ``(output, weights [b, heads, L, L])``,
        the weights computed explicitly as ``softmax(Q K^T / sqrt(d_h))`` (no dropout).
        """
        b, length, dim = x.shape
        q, k, v = self.split_heads(x)
        p = self.attn_dropout if self.training else 0.0
        if mask is None:
            ctx = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        else:
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        out = self.dropout(self.out(ctx.transpose(1, 2).reshape(b, length, dim)))
        if not return_attention:
            return out
        logits = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
        if mask is None:
            mask = torch.ones(length, length, dtype=torch.bool, device=x.device).tril()
        weights = logits.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        return out, weights


class FeedForward(nn.Module):
    """Position-wise ``Linear -> GELU -> Linear`` with dropout."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc2(self.dropout(F.gelu(self.fc1(x)))))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: ``x + attn(ln1(x))``, then ``x + ffn(ln2(x))``."""

    def __init__(self, dim: int, n_heads: int, ffn_hidden: int, dropout: float,
                 attn_dropout: float = 0.0) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, n_heads, dropout, attn_dropout)
        self.ln2 = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, ffn_hidden, dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                return_attention: bool = False):
        """One block; with ``return_attention`` also the attention weights."""
        if return_attention:
            a, weights = self.attn(self.ln1(x), mask, return_attention=True)
        else:
            a, weights = self.attn(self.ln1(x), mask), None
        x = x + a
        x = x + self.ffn(self.ln2(x))
        return (x, weights) if return_attention else x


class GPTRec(SequenceRecommender):
    """Decoder-only transformer recommender, trained on every position (next-item
    cross-entropy over the whole catalogue), with tied input/output item embeddings."""

    name = "GPTRec"

    def __init__(self, dim: int = 64, n_layers: int = 2, n_heads: int = 2, max_len: int = 50,
                 dropout: float = 0.3, ffn_mult: int = 4, attn_dropout: float = 0.0,
                 train_config=None, item_vectors: np.ndarray | None = None) -> None:
        super().__init__(train_config)
        if max_len < 2:
            raise ValueError(f"max_len must be >= 2 (a position needs a predecessor), got {max_len}")
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        if n_heads < 1 or dim % n_heads:
            raise ValueError(f"n_heads ({n_heads}) must be >= 1 and divide the width dim ({dim})")
        if not (0.0 <= dropout < 1.0 and 0.0 <= attn_dropout < 1.0):
            raise ValueError(f"dropout and attn_dropout must be in [0, 1), got {dropout}, {attn_dropout}")
        self.dim, self.n_layers, self.n_heads = dim, n_layers, n_heads
        self.max_len, self.dropout, self.ffn_mult = max_len, dropout, ffn_mult
        self.attn_dropout = attn_dropout
        # vectors to start the item embeddings from (or a function that computes them, called only
        # when the model is built to be trained), or None
        self.item_vectors = item_vectors

    def config(self) -> dict:
        return dict(dim=self.dim, n_layers=self.n_layers, n_heads=self.n_heads, max_len=self.max_len,
                    dropout=self.dropout, ffn_mult=self.ffn_mult, attn_dropout=self.attn_dropout,
                    text_init=self.item_vectors is not None)

    def build(self, n_items: int) -> None:
        """Create embedding, blocks and final LayerNorm for ``n_items`` real items."""
        self.n_items = n_items
        self.embedding = ItemPositionEmbedding(n_items, self.dim, self.max_len, self.dropout)
        self.blocks = nn.ModuleList(
            Block(self.dim, self.n_heads, self.ffn_mult * self.dim, self.dropout, self.attn_dropout)
            for _ in range(self.n_layers))
        self.ln_f = nn.LayerNorm(self.dim)
        self.apply(_init_weights)
        if self.item_vectors is not None:  # start from the text encoder's (or the LLM's) view of each item
            from .text import projected_item_embeddings

            if callable(self.item_vectors):
                self.item_vectors = self.item_vectors()
            if len(self.item_vectors) != n_items + 1:
                raise ValueError(f"item_vectors has {len(self.item_vectors)} rows, expected {n_items + 1}")
            with torch.no_grad():
                self.embedding.item.weight.copy_(projected_item_embeddings(self.item_vectors, self.dim))

    def hidden(self, seqs: torch.Tensor, return_attention: bool = False, occlude: torch.Tensor | None = None):
        """Final hidden states ``[b, L, dim]`` (and per-layer attention weights if asked);
        ``occlude``: items whose embeddings are left out, positions kept (see
        :class:`ItemPositionEmbedding`)."""
        if seqs.shape[1] > self.max_len:
            raise ValueError(f"sequence length {seqs.shape[1]} exceeds max_len {self.max_len}")
        mask = attention_mask(seqs) if bool((seqs == PAD).any()) else None
        x = self.embedding(seqs, occlude)
        weights = []
        for block in self.blocks:
            if return_attention:
                x, w = block(x, mask, return_attention=True)
                weights.append(w)
            else:
                x = block(x, mask)
        x = self.ln_f(x)
        return (x, weights) if return_attention else x

    def forward(self, seqs: torch.Tensor, return_attention: bool = False):
        """Next-item logits ``[b, L, n_items + 1]`` at every position (tied output)."""
        out = self.hidden(seqs, return_attention)
        h, weights = out if return_attention else (out, None)
        logits = h @ self.embedding.item.weight.T
        return (logits, weights) if return_attention else logits

    def last_logits(self, seqs: torch.Tensor) -> torch.Tensor:
        """Logits at the last position only (skips the output layer elsewhere)."""
        return self.hidden(seqs)[:, -1, :] @ self.embedding.item.weight.T

    def hidden_at(self, seqs: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        """Final hidden states ``[n, dim]`` at the positions where ``where`` is True (training)."""
        return self.hidden(seqs)[where]

    def output_layer(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The output weight (the item embedding matrix, tied) and no bias."""
        return self.embedding.item.weight, None

    @torch.no_grad()
    def recommend(self, history: Sequence[int], k: int = 10) -> np.ndarray:
        """The ``k`` highest-scoring items after ``history``, seen items and padding excluded."""
        scores = self.score([np.asarray(history)])[0]
        seen = torch.as_tensor(check_histories([history], self.n_items)[0], device=scores.device)
        scores[seen] = float("-inf")
        scores[PAD] = float("-inf")
        return scores.topk(k).indices.cpu().numpy()

    @torch.no_grad()
    def generate(self, history: Sequence[int], steps: int, beam: int = 1,
                 exclude_seen: bool = True) -> np.ndarray:
        """Continue ``history`` by ``steps`` items, autoregressively (greedy for ``beam=1``,
        else beam search on summed log-probabilities); items are not repeated if ``exclude_seen``."""
        n = self._require_fitted()
        if steps < 1 or beam < 1:
            raise ValueError(f"steps and beam must be >= 1, got {steps}, {beam}")
        was_training = self.training
        self.eval()
        start = check_histories([history], n)[0]
        beams: list[tuple[list[int], float]] = [([], 0.0)]
        for _ in range(steps):
            seqs = pad_sequences([np.concatenate([start, b[0]]) for b in beams], self.max_len)
            logp = self.last_logits(seqs.to(self.device)).float().log_softmax(-1)
            logp[:, PAD] = float("-inf")
            if exclude_seen:
                for row, (items, _) in enumerate(beams):
                    logp[row, np.concatenate([start, items]).astype(np.int64)] = float("-inf")
            total = logp + torch.tensor([b[1] for b in beams], device=logp.device)[:, None]
            top = total.flatten().topk(min(beam, total.numel()))
            width = logp.shape[1]
            beams = [(beams[i // width][0] + [i % width], float(v))
                     for v, i in zip(top.values.tolist(), top.indices.tolist()) if v > float("-inf")]
            if not beams:
                raise ValueError("no unseen item left to generate")
        self.train(was_training)
        return np.asarray(beams[0][0], dtype=np.int64)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
