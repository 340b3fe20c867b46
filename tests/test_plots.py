"""Figures readable on the site: the browser's shrink and the smallest text on screen, computed
from the figure itself (its width, dpi and every text's size), and a figure that would be
unreadable refused before it reaches a page."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from recnotes.report import plots  # noqa: E402


@pytest.fixture(autouse=True)
def _own_style():
    """The house style these tests set stays in them (other tests draw in matplotlib's own)."""
    with matplotlib.rc_context():
        yield


def _png_width(fig) -> int:
    """The width of the PNG a notebook saves of ``fig`` (IPython's own ``print_figure``)."""
    from IPython.core.pylabtools import print_figure

    return int.from_bytes(print_figure(fig, "png", bbox_inches="tight")[16:20], "big")


def test_a_figure_narrower_than_the_column_is_shown_at_its_size():
    fig, ax = plots.new_figure(width=5, height=3)
    ax.plot([0, 1], [0, 1])
    ax.tick_params(labelsize=10)
    dpi = fig.dpi
    assert _png_width(fig) <= 660
    assert plots.fit_column(fig, 660) == dpi  # nothing to change
    scale, px, text = plots.on_screen(fig, column_px=660)
    assert scale == 1.0 and px == pytest.approx(10 * dpi / 72) and text  # a tick label, the smallest text
    plt.close(fig)


def test_a_wide_figure_is_drawn_at_the_column_width_with_its_text_as_the_browser_would_show_it():
    fig, ax = plots.new_figure(width=10, height=3)
    ax.set_title("title")
    ax.tick_params(labelsize=10)
    scale, shrunk_px, _ = plots.on_screen(fig, column_px=660)
    assert _png_width(fig) > 900 and scale < 0.75  # as saved before: the browser would shrink it
    plots.fit_column(fig, 660)
    width = _png_width(fig)
    assert 640 <= width <= 660  # now the picture is the column's width: nothing to shrink
    scale, px, _ = plots.on_screen(fig, column_px=660)
    assert scale == 1.0 and px == pytest.approx(shrunk_px, rel=0.03)  # the same text size, drawn, not scaled
    plt.close(fig)


def test_a_figure_whose_text_would_be_too_small_is_refused():
    wide, ax = plots.new_figure(width=16, height=3)
    ax.tick_params(labelsize=10)
    with pytest.raises(ValueError, match="16 inches wide"):
        plots.glue_figure("too_wide", wide)
    small, ax = plots.new_figure(width=5, height=3)
    ax.text(0.5, 0.5, "a footnote", fontsize=5)
    with pytest.raises(ValueError, match="a footnote"):
        plots.glue_figure("tiny", small)
    fine, ax = plots.new_figure(width=6, height=3)
    ax.plot([0, 1])
    plots.glue_figure("fine", fine)  # outside a kernel it glues nothing, and raises nothing


def _lab(hex_color: str) -> tuple[float, float, float]:
    """sRGB (D65) to CIE L*a*b*, written out as the standard defines it."""
    rgb = [int(hex_color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883
    f = [v ** (1 / 3) if v > 0.008856 else 7.787 * v + 16 / 116 for v in (x, y, z)]
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


def test_every_two_models_differ_in_colour_and_in_grey():
    import itertools
    import math

    names = ["Popularity", "Random", "ItemKNN", "EASE", "LSTM", "GPTRec", "TextEmbedding", "LLMRanker[list]",
             "LLMItemHead"]
    colors = plots.model_colors(names)
    assert colors["LLMRanker[list]"] == plots.MODEL_COLORS["LLMRanker"]
    assert plots.model_colors(["GPTRec (seed 0)"])["GPTRec (seed 0)"] == colors["GPTRec"]
    lab = {n: _lab(c) for n, c in colors.items()}
    for a, b in itertools.combinations(names, 2):
        assert math.dist(lab[a], lab[b]) >= 25, (a, b)  # apart in colour
        assert abs(lab[a][0] - lab[b][0]) >= 5, (a, b)  # apart in lightness: in grey too
    unknown = plots.model_colors(["X", "Y"])
    assert unknown["X"] != unknown["Y"]
