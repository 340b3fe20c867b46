"""The book's house style: seaborn on matplotlib, one colour-blind-safe palette, and tables
that pandas does not cut short."""

from __future__ import annotations

import matplotlib.pyplot as plt
import seaborn as sns

__all__ = ["PALETTE", "set_style", "new_figure", "model_colors", "glue_figure"]

#: seaborn's colour-blind-safe palette (Wong/Okabe-Ito like), used everywhere in the book.
PALETTE = sns.color_palette("colorblind")


def set_style() -> None:
    """Apply the house style: white grid, readable sizes, the colour-blind palette; pandas
    shows whole cells (no "..." in a long title or model name) and three decimals."""
    import pandas as pd

    pd.set_option("display.max_colwidth", None)
    pd.set_option("display.precision", 3)
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE,
                  rc={"figure.dpi": 110, "savefig.dpi": 110, "axes.titlesize": 12,
                      "axes.labelsize": 11, "figure.figsize": (6.4, 3.8)})


def new_figure(ncols: int = 1, width: float = 6.4, height: float = 3.8, **kw):
    """A figure with ``ncols`` axes in the house style; returns ``(fig, axes)``."""
    set_style()
    fig, axes = plt.subplots(1, ncols, figsize=(width, height), constrained_layout=True, **kw)
    return fig, axes


def model_colors(names) -> dict[str, tuple]:
    """A fixed colour per model name, so a model keeps its colour across figures."""
    order = ["Popularity", "Random", "ItemKNN", "EASE", "LSTM", "GPTRec", "TextEmbedding", "LLMRanker"]
    out = {}
    for name in names:
        base = name.split("[")[0]
        idx = order.index(base) if base in order else len(out) + len(order)
        out[name] = PALETTE[idx % len(PALETTE)]
    return out


def glue_figure(name: str, fig) -> None:
    """Glue a figure for ``{glue:figure}`` (with its caption) and close it, so it is
    shown once, where the prose places it, not also under the plotting cell."""
    from .glue import glue_hidden

    glue_hidden(name, fig)
    plt.close(fig)
