"""Compressing a trained GPTRec to int8, and measuring what it weighs.

Two independent steps (:func:`quantize_gptrec`):

* **Linear layers** (attention Q/K/V and output projections, feed-forward):
  PyTorch dynamic quantization (``torch.ao.quantization.quantize_dynamic``):
  int8 weights, activations quantized on the fly per batch, int8 matrix
  products on the CPU's quantized engine (x86/fbgemm, or qnnpack on ARM).
* **Item embeddings**: GPTRec uses one table twice, for the input lookup and,
  tied, as the output layer that scores the whole catalogue (``h @ W_e^T``,
  not an ``nn.Linear``, so ``quantize_dynamic`` leaves it alone).
  :class:`Int8Embedding` stores it as int8 codes with one float scale per item
  (symmetric, per row); rows and the output matrix are dequantized on use, so
  storage is int8 while that arithmetic stays float.

Position embeddings, LayerNorms and biases stay float32.  Dynamic quantization
runs on the CPU only.
"""

from __future__ import annotations

import copy
import io
import warnings

import torch
from torch import nn

from .gptrec import GPTRec

__all__ = ["quantized_engine", "Int8Embedding", "quantize_gptrec", "state_dict_bytes"]


def quantized_engine() -> str | None:
    """The quantized CPU engine PyTorch will use (``x86``, ``fbgemm``, ``qnnpack``...),
    or None when this build has none (then only the embeddings can be quantized)."""
    engine = torch.backends.quantized.engine
    supported = [e for e in torch.backends.quantized.supported_engines if e != "none"]
    return engine if engine in supported else None


class Int8Embedding(nn.Module):
    """An embedding table stored as int8 codes times one float32 scale per row.

    ``W[i] ~ scale[i] * codes[i]`` with ``scale[i] = max|W[i]| / 127``, so each
    entry is off by at most ``scale[i] / 2``.  ``forward(ids)`` looks rows up like
    ``nn.Embedding``; ``weight`` is the dequantized float matrix, which keeps code
    that multiplies by ``embedding.weight`` (GPTRec's tied output layer) working.
    """

    def __init__(self, codes: torch.Tensor, scales: torch.Tensor, padding_idx: int | None = None) -> None:
        super().__init__()
        if codes.dtype != torch.int8 or codes.ndim != 2 or scales.shape != codes.shape[:1]:
            raise ValueError("need int8 codes [n, dim] and one scale per row")
        self.register_buffer("codes", codes)
        self.register_buffer("scales", scales.to(torch.float32))
        self.padding_idx = padding_idx

    @classmethod
    def from_float(cls, embedding: nn.Embedding) -> "Int8Embedding":
        """Quantize an ``nn.Embedding`` (or any module with a 2-D ``weight``) row by row."""
        w = embedding.weight.detach().float().cpu()
        peak = w.abs().amax(dim=1)
        scales = torch.where(peak > 0, peak / 127.0, torch.ones_like(peak))
        codes = torch.round(w / scales[:, None]).clamp(-127, 127).to(torch.int8)
        return cls(codes, scales, getattr(embedding, "padding_idx", None))

    @property
    def weight(self) -> torch.Tensor:
        """The dequantized table ``[n, dim]`` (float32)."""
        return self.codes.float() * self.scales[:, None]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.codes[ids].float() * self.scales[ids].unsqueeze(-1)

    def extra_repr(self) -> str:
        return f"{self.codes.shape[0]}, {self.codes.shape[1]}, dtype=int8, per-row scales"


def quantize_gptrec(model: GPTRec, linear: bool = True, embeddings: bool = True,
                    name: str | None = None) -> GPTRec:
    """An int8 copy of a trained GPTRec on the CPU (the original is left untouched).

    ``linear``: quantize the ``nn.Linear`` layers dynamically (needs a quantized
    engine, see :func:`quantized_engine`; a ``RuntimeError`` says so otherwise);
    ``embeddings``: store the item table as :class:`Int8Embedding` (input lookup
    and tied output layer).  ``name`` labels the copy in tables.
    """
    if not linear and not embeddings:
        raise ValueError("nothing to quantize: set linear and/or embeddings")
    model._require_fitted()
    q = copy.deepcopy(model).cpu().eval()
    if embeddings:
        q.embedding.item = Int8Embedding.from_float(q.embedding.item)
    if linear:
        if quantized_engine() is None:
            raise RuntimeError(
                "this PyTorch build has no quantized CPU engine "
                f"(torch.backends.quantized.supported_engines = {torch.backends.quantized.supported_engines}); "
                "quantize only the embeddings with linear=False, or install a standard PyTorch build")
        with warnings.catch_warnings():
            # torch.ao.quantization is deprecated in favour of the torchao package; same scheme
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            q = torch.ao.quantization.quantize_dynamic(q, {nn.Linear}, dtype=torch.qint8)
    q.name = name or "GPTRec[int8]"
    return q


def state_dict_bytes(model: nn.Module) -> int:
    """Size in bytes of ``torch.save(model.state_dict())``: what storing or shipping
    the weights costs (int8 packed weights, scales and float tensors alike)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes
