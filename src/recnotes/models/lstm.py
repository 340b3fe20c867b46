"""The source article's LSTM next-item model, made correct.

The article's Keras listing: an item embedding of size 50, two stacked LSTM
layers of 100 units and a dense softmax over all items.  Here it reads each
user's sequence once and predicts the next item at every position (shifted
targets, padding ignored), as GPTRec does, so the two differ only in the
sequence encoder.  Each sequence is moved to the start of its row, so the
padding comes after its real items: the recurrence reads a history from its
first item, and a history's states do not depend on how much padding its
batch needed (no packing is needed, which is more than twice as fast on a CPU).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..data.interactions import PAD
from .base import SequenceRecommender
from .kernels import Dropout, using_reference

__all__ = ["LSTM"]


class LSTM(SequenceRecommender):
    """Embedding -> stacked LSTM -> dense layer over the catalogue (logits; softmax in the loss)."""

    name = "LSTM"

    def __init__(self, embedding_dim: int = 50, hidden: int = 100, n_layers: int = 2,
                 max_len: int = 50, dropout: float = 0.2, train_config=None) -> None:
        super().__init__(train_config)
        if max_len < 2:
            raise ValueError(f"max_len must be >= 2 (a position needs a predecessor), got {max_len}")
        if n_layers < 1 or hidden < 1 or embedding_dim < 1:
            raise ValueError("embedding_dim, hidden and n_layers must be >= 1")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.embedding_dim, self.hidden_size, self.n_layers = embedding_dim, hidden, n_layers
        self.max_len, self.dropout = max_len, dropout

    def config(self) -> dict:
        return dict(embedding_dim=self.embedding_dim, hidden=self.hidden_size,
                    n_layers=self.n_layers, max_len=self.max_len, dropout=self.dropout)

    def build(self, n_items: int) -> None:
        """Create the layers for ``n_items`` real items."""
        self.n_items = n_items
        self.embedding = nn.Embedding(n_items + 1, self.embedding_dim, padding_idx=PAD)
        self.rnn = nn.LSTM(self.embedding_dim, self.hidden_size, num_layers=self.n_layers,
                           batch_first=True, dropout=self.dropout if self.n_layers > 1 else 0.0)
        self.drop = Dropout(self.dropout)
        self.output = nn.Linear(self.hidden_size, n_items + 1)

    def encode(self, seqs: torch.Tensor) -> torch.Tensor:
        """Hidden states ``[b, L, hidden]`` of left-padded ``seqs`` (zeros at padding)."""
        b, length = seqs.shape
        lengths = (seqs != PAD).sum(1)
        shift = (length - lengths)[:, None]
        cols = torch.arange(length, device=seqs.device)[None, :]
        # left-padded -> right-padded: the recurrence starts at each sequence's first item
        # and the padding after its last item cannot change the states before it
        right = seqs.gather(1, (cols + shift) % length)
        x = self.drop(self.embedding(right))
        if using_reference():  # the old path: packed sequences (same states, slower)
            packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True,
                                          enforce_sorted=False)
            out, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=length)
        else:
            out, _ = self.rnn(x)
        # right-padded -> left-padded again
        out = out.gather(1, ((cols - shift) % length)[..., None].expand(-1, -1, out.shape[-1]))
        return self.drop(out * (seqs != PAD)[..., None])

    def forward(self, seqs: torch.Tensor) -> torch.Tensor:
        """Next-item logits ``[b, L, n_items + 1]`` at every position."""
        return self.output(self.encode(seqs))

    def last_logits(self, seqs: torch.Tensor) -> torch.Tensor:
        """Logits at the last position only (the dense layer is not applied elsewhere)."""
        return self.output(self.encode(seqs)[:, -1])

    def hidden_at(self, seqs: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        """Hidden states only where ``where`` is True (saves the dense layer at padding)."""
        return self.encode(seqs)[where]

    def output_layer(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The dense layer's weight and bias."""
        return self.output.weight, self.output.bias
