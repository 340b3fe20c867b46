"""Fast training kernels for the neural models, and a switch back to plain PyTorch.

Profiling one GPTRec training step on a CPU core showed where the time went:
the full-catalogue output layer and its log-softmax (about half), and the
dropout masks (``bernoulli_``, about a sixth).  Two kernels cut both:

* :class:`Dropout` draws its keep-mask from packed random bits (four 16-bit
  draws per 64-bit random number) instead of one Bernoulli draw per element, on
  the CPU; it keeps an element with probability ``1 - round(p * 2**16) / 2**16``
  (``p`` to within 1/65536) and scales by the inverse, as :func:`torch.nn.functional.dropout`
  does.  Elsewhere (CUDA, MPS) it is ``F.dropout``.
* :func:`linear_cross_entropy` fuses the output layer and the cross-entropy: one
  softmax pass forward, and the gradient ``softmax - onehot`` written directly,
  with no log-softmax backward.  Its three matrix products run in bf16 where
  the processor multiplies bf16 natively (:func:`recnotes.device.training_dtype`),
  as mixed-precision training does on GPUs; the softmax and the loss stay in float32.

Inside ``with reference():`` both fall back to the plain PyTorch operations
(``F.dropout`` and ``F.cross_entropy`` of float32 logits), which is how the
benchmark times the old path beside the new one and how the tests compare them.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Dropout", "linear_cross_entropy", "reference", "using_reference", "keep_mask"]

_STATE = threading.local()


@contextmanager
def reference():
    """Use plain PyTorch dropout and cross-entropy inside the block (the old training path)."""
    before = getattr(_STATE, "reference", False)
    _STATE.reference = True
    try:
        yield
    finally:
        _STATE.reference = before


def using_reference() -> bool:
    """Whether a :func:`reference` block is active in this thread."""
    return getattr(_STATE, "reference", False)


def _threshold(p: float) -> int:
    """The int16 threshold: an element is kept when its 16 random bits are >= it."""
    return int(round(p * 65536)) - 32768


def keep_mask(shape: torch.Size | tuple[int, ...], p: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """A boolean mask of ``shape``, each element True with probability ``1 - p``
    (``p`` rounded to a multiple of 1/65536), from the default generator's random bits."""
    n = 1
    for s in shape:
        n *= int(s)
    words = torch.randint(-2 ** 63, 2 ** 63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=device)
    return words.view(torch.int16)[:n].view(shape) >= _threshold(p)


class Dropout(nn.Module):
    """Drop-in for :class:`torch.nn.Dropout` with a cheaper mask on the CPU (see the module docstring)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.scale = 65536.0 / (32767 - _threshold(p) + 1)  # 1 / P(keep)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu" or using_reference():
            return F.dropout(x, self.p, training=True)
        return x * (keep_mask(x.shape, self.p, x.device).to(x.dtype) * self.scale)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class _LinearCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of ``h @ weight.T + bias`` against ``target``, gradients by hand."""

    @staticmethod
    def forward(ctx, h, weight, bias, target, dtype):
        hc, wc = h.to(dtype), weight.to(dtype)
        logits = torch.mm(hc, wc.T).float()
        if bias is not None:
            logits += bias.float()
        prob = torch.softmax(logits, dim=1)
        del logits
        # -log p(target); p is clamped at the smallest normal float so that a target
        # whose probability underflows gives a large finite loss (its gradient is exact)
        picked = prob.gather(1, target[:, None]).squeeze(1)
        loss = -picked.clamp_min(torch.finfo(torch.float32).tiny).log().mean()
        ctx.save_for_backward(hc, wc, target, prob)
        ctx.has_bias, ctx.h_dtype, ctx.w_dtype = bias is not None, h.dtype, weight.dtype
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        hc, wc, target, prob = ctx.saved_tensors
        grad = prob  # d loss / d logits = (softmax - onehot) / n, built in place
        grad[torch.arange(len(target), device=grad.device), target] -= 1.0
        grad *= grad_loss / len(target)
        g = grad.to(hc.dtype)
        grad_h = torch.mm(g, wc).to(ctx.h_dtype)
        grad_w = torch.mm(g.T, hc).to(ctx.w_dtype)
        grad_b = grad.sum(0) if ctx.has_bias else None
        return grad_h, grad_w, grad_b, None, None


def linear_cross_entropy(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                         target: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Mean cross-entropy of the logits ``h @ weight.T (+ bias)`` against ``target`` (item ids).

    ``dtype`` is the precision of the three matrix products (default float32);
    the softmax and the loss are float32.  Under :func:`reference` this is
    ``F.cross_entropy`` of float32 logits.
    """
    if h.dim() != 2 or target.shape != h.shape[:1]:
        raise ValueError(f"h must be [n, d] and target [n], got {tuple(h.shape)} and {tuple(target.shape)}")
    if len(target) == 0:
        raise ValueError("no targets: every position of the batch is padding")
    if using_reference():
        logits = F.linear(h, weight, bias)
        return F.cross_entropy(logits.float(), target)
    return _LinearCrossEntropy.apply(h, weight, bias, target, dtype or torch.float32)
