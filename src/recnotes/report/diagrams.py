"""Block diagrams drawn with matplotlib, so they render in the static site offline.

(Mermaid, which the source article uses, needs a JavaScript library from the
web at view time; a PNG drawn here does not.)
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
from matplotlib.colors import to_rgb
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from .plots import PALETTE, set_style

__all__ = ["flow_diagram", "gpt_diagram"]


def _box(ax, x: float, y: float, w: float, h: float, text: str, color, fontsize: float = 9.5) -> None:
    rgb = to_rgb(color)
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.04",
                                facecolor=(*rgb, 0.18), edgecolor=rgb, linewidth=1.4))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, wrap=True)


def _arrow(ax, xy0, xy1) -> None:
    ax.add_patch(FancyArrowPatch(xy0, xy1, arrowstyle="-|>", mutation_scale=12, color="0.3", linewidth=1.2))


def flow_diagram(stages: Sequence[tuple[str, str]], width: float = 7.4, height: float = 2.0):
    """A left-to-right chain of boxes; each stage is ``(title, detail)``. Returns the figure."""
    set_style()
    n = len(stages)
    fig, ax = plt.subplots(figsize=(width, height))
    ax.set(xlim=(0, n), ylim=(0, 1))
    ax.axis("off")
    for i, (title, detail) in enumerate(stages):
        _box(ax, i + 0.5, 0.5, 0.84, 0.78, f"$\\bf{{{title.replace(' ', '~')}}}$\n{detail}",
             PALETTE[i % len(PALETTE)], fontsize=9.5)
        if i < n - 1:
            _arrow(ax, (i + 0.93, 0.5), (i + 1.07, 0.5))
    fig.tight_layout()
    return fig


def gpt_diagram(n_layers: int, dim: int, n_heads: int, max_len: int, n_items: int,
                ffn_dim: int | None = None, width: float = 5.6, height: float = 7.4):
    """GPTRec's decoder-only stack, bottom (input) to top (next-item scores), with its sizes."""
    set_style()
    ffn_dim = ffn_dim or 4 * dim
    fig, ax = plt.subplots(figsize=(width, height))
    ax.set(xlim=(0, 10), ylim=(0, 13.4))
    ax.axis("off")
    c_in, c_att, c_ffn, c_out = PALETTE[0], PALETTE[1], PALETTE[2], PALETTE[4]
    _box(ax, 5, 0.6, 8, 0.8, f"history: item ids $i_1 \\ldots i_t$ (last {max_len}, left-padded)", "0.5")
    _box(ax, 5, 2.0, 8, 1.0, f"item embedding $E[i_t]$ ({n_items:,} x {dim})\n+ learned position embedding $P[t]$",
         c_in)
    _arrow(ax, (5, 1.0), (5, 1.5))
    # the repeated block
    ax.add_patch(FancyBboxPatch((0.6, 3.0), 8.8, 6.3, boxstyle="round,pad=0.05,rounding_size=0.1",
                                facecolor="none", edgecolor="0.5", linestyle="--"))
    ax.text(9.3, 9.05, f"x {n_layers} blocks", ha="right", va="top", fontsize=9, color="0.3")
    _arrow(ax, (5, 2.5), (5, 3.5))
    _box(ax, 5, 4.0, 7, 0.8, "LayerNorm", "0.6")
    _box(ax, 5, 5.4, 7, 1.2, f"causal multi-head self-attention\n{n_heads} heads of {dim // n_heads}: "
         "softmax$(QK^T/\\sqrt{d_k}$ + mask$)V$", c_att)
    _box(ax, 5, 6.9, 7, 0.8, "LayerNorm", "0.6")
    _box(ax, 5, 8.2, 7, 1.1, f"feed-forward: GELU$(xW_1+b_1)W_2+b_2$\n{dim} -> {ffn_dim} -> {dim}", c_ffn)
    for y0, y1 in ((4.4, 4.8), (6.0, 6.5), (7.3, 7.65)):
        _arrow(ax, (5, y0), (5, y1))
    ax.text(0.9, 5.4, "+", fontsize=14, ha="center", va="center")
    ax.text(0.9, 8.2, "+", fontsize=14, ha="center", va="center")
    ax.text(1.35, 3.4, "residual connections around both sub-layers", fontsize=7.5, color="0.3")
    _arrow(ax, (5, 8.75), (5, 10.0))
    _box(ax, 5, 10.4, 7, 0.8, "final LayerNorm", "0.6")
    _arrow(ax, (5, 10.8), (5, 11.3))
    _box(ax, 5, 11.9, 8, 1.1, "scores of every item $h_t E^T$ (tied embeddings)\n"
         "softmax -> $p(i_{t+1} \\mid i_1 \\ldots i_t)$", c_out)
    fig.tight_layout()
    return fig
