"""The book's house style: seaborn on matplotlib, one colour-blind-safe palette, and tables
that pandas does not cut short."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

__all__ = ["PALETTE", "MODEL_COLORS", "COLUMN_PX", "MIN_TEXT_PX", "set_style", "new_figure", "model_colors", "fit_column", "on_screen",
           "glue_figure", "learning_curves", "dot_panels", "curve_with_span", "chance", "interval_bars", "frontier",
           "pareto_figure"]

#: seaborn's colour-blind-safe palette (Wong/Okabe-Ito like), used everywhere in the book.
PALETTE = sns.color_palette("colorblind")
#: the width in CSS pixels at which the site shows a figure at a 1280 px window (its figure
#: box in the text column, measured in Chromium): a wider picture is shrunk by the browser
COLUMN_PX = 660
#: the smallest text a figure may show on screen, in CSS pixels
MIN_TEXT_PX = 9.0


def set_style() -> None:
    """Apply the house style: white grid, readable sizes, the colour-blind palette; pandas
    shows whole cells (no "..." in a long title or model name) and three decimals."""
    import pandas as pd

    pd.set_option("display.max_colwidth", None)
    pd.set_option("display.precision", 3)
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE,
                  rc={"figure.dpi": 110, "savefig.dpi": 110, "axes.titlesize": 12,
                      "axes.labelsize": 11, "figure.figsize": (6.4, 3.8)})


def new_figure(ncols: int = 1, width: float = 6.4, height: float = 3.8, nrows: int = 1, **kw):
    """A figure with ``nrows`` x ``ncols`` axes in the house style; returns ``(fig, axes)``."""
    set_style()
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), constrained_layout=True, **kw)
    return fig, axes


#: one colour per model family, every pair apart in hue (CIE ΔE at least 25) and in
#: lightness (ΔL* at least 5, so that they differ in grey too); Okabe-Ito-like
MODEL_COLORS = {"LLMRanker": "#6A2C91", "ItemKNN": "#006D4F", "Popularity": "#6F6F6F", "EASE": "#D55E00",
                "LSTM": "#CC78BC", "GPTRec": "#56B4E9", "Random": "#BBBBBB", "TextEmbedding": "#E6D222",
                "LLMItemHead": "#6B1414"}


def lighter(color, n: int) -> list[tuple]:
    """``n`` tints of ``color``, each nearer white than the one before (for runs of one model
    drawn beside it)."""
    from matplotlib.colors import to_rgb

    rgb = np.asarray(to_rgb(color))
    return [tuple(rgb + (1 - rgb) * (0.35 + 0.4 * i / max(n, 1))) for i in range(n)]


def model_colors(names) -> dict[str, str | tuple]:
    """A fixed colour per model name (by its family, the name before ``[``), so a model keeps
    its colour across figures; names of no known family take the house palette in turn."""
    out, extra = {}, 0
    for name in names:
        base = str(name).split("[")[0].split(" ")[0]
        if base in MODEL_COLORS:
            out[name] = MODEL_COLORS[base]
        else:
            out[name] = PALETTE[extra % len(PALETTE)]
            extra += 1
    return out


def _tight_width_px(fig) -> float:
    """The width in pixels of the PNG that the notebook saves (``bbox_inches="tight"``, with
    its 0.1-inch pad on each side) at the figure's dpi."""
    fig.canvas.draw()  # the tick labels exist only once the figure is drawn
    box = fig.get_tightbbox(fig.canvas.get_renderer())
    return (box.width + 0.2) * fig.dpi


def fit_column(fig, column_px: float = COLUMN_PX) -> float:
    """Render ``fig`` at a resolution whose picture is at most ``column_px`` wide, so that the
    browser shows it at its own size (no shrink, crisp text); returns the dpi."""
    width = _tight_width_px(fig)
    if width > column_px:
        fig.set_dpi(fig.dpi * column_px / width)
    return fig.dpi


def on_screen(fig, column_px: float = COLUMN_PX) -> tuple[float, float, str]:
    """How ``fig`` reads on the site as it would be saved now: the browser's scale (1 where the
    picture fits the figure column, less where it is shrunk to fit), the smallest text's height
    on screen in CSS pixels, and that text."""
    scale = min(1.0, column_px / _tight_width_px(fig))
    texts = [t for t in fig.findobj(lambda a: hasattr(a, "get_fontsize") and hasattr(a, "get_text"))
             if t.get_visible() and str(t.get_text()).strip()]
    if not texts:
        return scale, float("inf"), ""
    smallest = min(texts, key=lambda t: t.get_fontsize())
    return scale, smallest.get_fontsize() * fig.dpi / 72 * scale, str(smallest.get_text())


def glue_figure(name: str, fig) -> None:
    """Glue a figure for ``{glue:figure}`` (with its caption) and close it, so it is
    shown once, where the prose places it, not also under the plotting cell.

    The figure is rendered at the column's width (:func:`fit_column`); one whose smallest
    text would then be under :data:`MIN_TEXT_PX` on screen is refused: draw it narrower or
    with larger text."""
    from .glue import glue_hidden

    fit_column(fig)
    _, px, text = on_screen(fig)
    if px < MIN_TEXT_PX:
        plt.close(fig)
        raise ValueError(f"figure {name!r}: its text {text[:40]!r} would be {px:.1f} px on screen (at least "
                         f"{MIN_TEXT_PX:g}) once the figure, {fig.get_figwidth():g} inches wide, is drawn at the "
                         f"{COLUMN_PX} px of the column; draw it narrower or with larger text")
    glue_hidden(name, fig)
    plt.close(fig)

def learning_curves(curves, references, colors, ylabel: str = "NDCG@10 on P2 (20 candidates)",
                    xlabels: tuple[str, str] = ("training targets (log scale)",
                                                "CPU seconds of fine-tuning (log scale)")):
    """Two panels of learning curves, against training targets and against CPU seconds (log
    axes; a zero-shot point, at 0, is drawn at the left edge and labelled "0").

    ``curves``: label -> frame with columns ``targets``, ``seconds``, ``ndcg10`` and, for a
    band, ``low`` and ``high`` (one row per kept point); ``references``: label -> a value drawn
    as a dashed line; ``colors``: label -> colour for both.  Returns the figure.
    """
    import numpy as np

    fig, axes = new_figure(ncols=2, width=8, height=4.4, sharey=True)
    markers = "os^vD"
    for ax, column, floor, label in ((axes[0], "targets", 300.0, xlabels[0]),
                                     (axes[1], "seconds", 10.0, xlabels[1])):
        zero = any((frame[column] == 0).any() for frame in curves.values())
        top = max(float(frame[column].max()) for frame in curves.values())
        for (name, frame), marker in zip(curves.items(), markers):
            x = np.maximum(frame[column].to_numpy(float), floor)
            if {"low", "high"} <= set(frame.columns):
                ax.fill_between(x, frame["low"], frame["high"], color=colors[name], alpha=0.15, lw=0)
            ax.plot(x, frame["ndcg10"], marker=marker, ms=4, color=colors[name], label=name)
        for (name, value), style in zip(references.items(), ("--", "-.", ":", (0, (5, 1)))):
            ax.axhline(value, ls=style, lw=1.4, color=colors[name], label=name)
        ax.set_xscale("log")
        decades = [10.0 ** e for e in range(2 if column == "seconds" else 3, 9) if floor < 10.0 ** e <= top * 1.5]
        ticks = ([floor] if zero else []) + decades
        ax.set_xticks(ticks, (["0"] if zero else []) + [
            (f"{t / 1e6:g}M" if t >= 1e6 else f"{t / 1000:g}k") if column == "targets" else f"{t:,.0f}"
            for t in decades])
        ax.set(xlabel=label)
    axes[0].set_ylabel(ylabel)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, frameon=False)
    return fig


def dot_panels(panels, chance: float | None = None, xlabel: str = "NDCG@10, 20 candidates",
               width: float = 7.2, height: float = 7.6):
    """Dot plots stacked on one x axis, one per entry of ``panels``: title -> ``(values,
    filled)``, ``values`` a Series (label -> value) drawn bottom to top in its order, filled
    dots for what was measured, hollow diamonds for what is cited; each panel as tall as its
    rows.  A dashed line at ``chance``.  Returns the figure."""
    import numpy as np

    fig, axes = new_figure(nrows=len(panels), width=width, height=height, sharex=True, squeeze=False,
                           gridspec_kw={"height_ratios": [len(v) for v, _ in panels.values()]})
    for ax, (title, (values, filled)) in zip(axes[:, 0], panels.items()):
        y = np.arange(len(values))
        ax.scatter(values.to_numpy(), y, marker="o" if filled else "D", s=55, zorder=3,
                   color=PALETTE[0] if filled else "white", edgecolor=PALETTE[0] if filled else "0.3")
        if chance is not None:
            ax.axvline(chance, ls="--", c="grey", lw=1)
        ax.set_yticks(y, values.index)
        ax.set(xlabel=xlabel, title=title)
    return fig


def curve_with_span(curve, best: dict[str, float], span: dict[str, tuple[float, float]], label: str,
                    span_label: str, colors: tuple, ylabel: str):
    """A training curve in two panels sharing the y axis, against ``targets`` and ``seconds``
    (log axes): ``curve`` a frame with those columns and ``ndcg10``; a dotted line at ``best[x]``
    (the kept epoch) and a shaded ``span[x]`` (where another run lies on the same axes).
    ``colors``: the curve's and the span's.  Returns the figure."""
    fig, axes = new_figure(ncols=2, width=10, height=3.4, sharey=True)
    for ax, column, xlabel in ((axes[0], "targets", "training targets seen (log scale)"),
                               (axes[1], "seconds", "CPU seconds of training (log scale)")):
        ax.axvspan(*span[column], color=colors[1], alpha=0.15, lw=0, label=span_label)
        ax.plot(curve[column], curve["ndcg10"], "o-", ms=3, color=colors[0], label=label)
        ax.axvline(best[column], ls=":", c="grey", lw=1)
        ax.set_xscale("log")
        ax.set(xlabel=xlabel)
    axes[0].set_ylabel(ylabel)
    axes[1].legend(loc="lower right", frameon=True)
    return fig


def chance(metric: str, n_candidates: int) -> float:
    """The expected value of ``metric`` (``"NDCG@10"``, ``"HR@5"``, ...) for a ranking in random
    order of ``n_candidates`` candidates, one of them the target (every rank equally likely):
    the line a figure draws as chance."""
    import numpy as np

    from ..evaluate.metrics import ACCURACY_METRICS, parse_column, rank_metrics

    name, k = parse_column(metric)
    if name not in ACCURACY_METRICS or k is None:
        raise ValueError(f"not an accuracy metric at a cutoff: {metric!r}")
    return float(rank_metrics(np.arange(n_candidates), (k,))[metric].mean())


def interval_bars(ax, numbers, metric: str, colors: dict, label=str) -> None:
    """Horizontal bars of ``numbers[metric]`` (an :func:`~recnotes.report.compare.accuracy_frame`),
    its first row on top, each with its 95% interval (``<metric> low`` to ``<metric> high``) and
    its model's colour; ``label`` names a row on the axis."""
    import numpy as np

    shown = list(numbers.index)[::-1]
    values = numbers.loc[shown, metric].to_numpy(float)
    bounds = numbers.loc[shown, [f"{metric} low", f"{metric} high"]].to_numpy(float)
    ax.barh([label(n) for n in shown], values, xerr=np.abs(bounds.T - values), color=[colors[n] for n in shown],
            capsize=3)
    ax.set(xlabel=f"{metric} (95% bootstrap interval)")


def frontier(points) -> list:
    """The names on the Pareto frontier of ``points`` (a frame with ``latency`` and ``ndcg``, one
    row per model): in order of latency, each better than every faster one."""
    out, best = [], float("-inf")
    for name, row in points.sort_values("latency", kind="stable").iterrows():
        if row["ndcg"] > best:
            out.append(name)
            best = row["ndcg"]
    return out


def dominating(points, name) -> list:
    """The models of ``points`` (:func:`frontier`'s frame) both faster and better than ``name``,
    the fastest first."""
    row = points.loc[name]
    others = points.drop(index=name)
    better = others[(others["latency"] < row["latency"]) & (others["ndcg"] > row["ndcg"])]
    return list(better.sort_values("latency", kind="stable").index)


def frontier_words(points, names, label=str) -> str:
    """Where each of ``names`` stands against the frontier of ``points``, one sentence each: on it,
    or not, with the models that are both faster and better than it."""
    from .phrases import _series

    on = frontier(points)
    out = []
    for name in (n for n in names if n in points.index):
        if name in on:
            out.append(f"{label(name)} is on it.")
            continue
        above = [label(n) for n in dominating(points, name)]
        out.append(f"{label(name)} is not on it: {_series(above)} {'is' if len(above) == 1 else 'are'} "
                   "faster and better.")
    return " ".join(out)


def pareto_figure(points, colors: dict, label=str, slow: tuple = (), ylabel: str = "P2 NDCG@10"):
    """Quality against latency (log axis), one dot per model of ``points`` (:func:`frontier`'s
    frame), circled on the frontier, which a dashed step joins.  A name sits left of its dot where
    the dot lies far right of the others (a hundred times slower than the slowest model not in
    ``slow``) or where another dot lies just right of it, on its level; under a frontier dot
    otherwise (the step rises at its right).  Returns the figure."""
    on = frontier(points)
    scale = 100 * points["latency"].drop(index=[n for n in slow if n in points.index]).max()
    fig, ax = new_figure(width=7.5, height=4.2)
    ax.set_xscale("log")
    for name, row in points.iterrows():
        ax.scatter(row["latency"], row["ndcg"], s=60, color=colors[name], zorder=3,
                   edgecolor="black" if name in on else "none")
    ax.margins(y=0.08)  # room for the names of the top and bottom dots
    fig.canvas.draw()  # the axes' limits, so that dots have their places in points
    xy = dict(zip(points.index, ax.transData.transform(points[["latency", "ndcg"]].to_numpy(float))))
    for name, row in points.iterrows():
        x, y = xy[name]
        crowded = any(0 < ox - x < 70 and abs(oy - y) < 20 for other, (ox, oy) in xy.items() if other != name)
        left = row["latency"] > scale or crowded
        below = name in on and not left  # the step rises right of a frontier dot: its name goes under it
        ax.annotate(label(name), (row["latency"], row["ndcg"]), textcoords="offset points", fontsize=9,
                    xytext=(-6, 6) if left else (6, -5) if below else (6, 4), ha="right" if left else "left",
                    va="top" if below else "baseline")
    ax.step(points.loc[on, "latency"], points.loc[on, "ndcg"], where="post", color="grey", ls="--", lw=1)
    ax.set(xscale="log", xlabel="latency of one request, p50 (ms, log scale)", ylabel=ylabel)
    return fig
