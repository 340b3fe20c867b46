"""Figures readable on the site: the browser's shrink and the smallest text on screen, computed
from the figure itself (its width, dpi and every text's size), and a figure that would be
unreadable refused before it reaches a page."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from recnotes.report import plots  # noqa: E402


def test_a_figure_that_fits_the_column_is_not_shrunk_and_its_ticks_are_read_at_their_size():
    fig, ax = plots.new_figure(width=6.4, height=3)
    ax.plot([0, 1], [0, 1])
    ax.tick_params(labelsize=10)
    scale, px, text = plots.on_screen(fig, column_px=800)
    dpi = plt.rcParams["savefig.dpi"]
    assert 6.4 * dpi <= 800 and scale == 1.0
    assert px == pytest.approx(10 * dpi / 72) and text  # a tick label, the smallest text
    plt.close(fig)


def test_a_figure_wider_than_the_column_is_shrunk_and_its_text_with_it():
    fig, ax = plots.new_figure(width=16, height=3)
    ax.set_title("title")
    ax.tick_params(labelsize=10)
    dpi = plt.rcParams["savefig.dpi"]
    scale, px, _ = plots.on_screen(fig, column_px=800)
    assert scale == pytest.approx(800 / (16 * dpi))
    assert px == pytest.approx(10 * dpi / 72 * scale)
    with pytest.raises(ValueError, match="shrunk to"):
        plots.glue_figure("too_wide", fig)


def test_tiny_text_is_refused_even_in_a_figure_that_fits():
    fig, ax = plots.new_figure(width=6, height=3)
    ax.text(0.5, 0.5, "a footnote", fontsize=5)
    scale, px, text = plots.on_screen(fig, column_px=800)
    assert scale == 1.0 and text == "a footnote" and px < plots.MIN_TEXT_PX
    with pytest.raises(ValueError, match="a footnote"):
        plots.glue_figure("tiny", fig)
    fine, ax = plots.new_figure(width=6, height=3)
    ax.plot([0, 1])
    plots.glue_figure("fine", fine)  # outside a kernel it glues nothing, and raises nothing
