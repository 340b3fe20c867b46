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


def test_chance_is_the_mean_over_every_rank_of_a_random_order():
    import math

    # brute force: the target equally likely at each of the 20 places
    assert plots.chance("NDCG@10", 20) == pytest.approx(sum(1 / math.log2(r + 2) for r in range(10)) / 20)
    assert plots.chance("HR@5", 20) == pytest.approx(5 / 20)
    assert plots.chance("MRR@20", 20) == pytest.approx(sum(1 / (r + 1) for r in range(20)) / 20)
    with pytest.raises(ValueError, match="accuracy metric"):
        plots.chance("coverage@10", 20)


def test_dot_panels_and_the_curve_with_its_span_draw_what_they_are_given():
    import pandas as pd

    measured = pd.Series({"a": 0.2, "b": 0.5})
    cited = pd.Series({"x": 0.1, "y": 0.3, "z": 0.6})
    fig = plots.dot_panels({"measured": (measured, True), "cited": (cited, False)}, chance=0.17)
    top, bottom = fig.axes
    assert [t.get_text() for t in top.get_yticklabels()] == ["a", "b"]
    assert [t.get_text() for t in bottom.get_yticklabels()] == ["x", "y", "z"]
    assert list(top.collections[0].get_offsets()[:, 0]) == [0.2, 0.5]
    assert top.lines[0].get_xdata()[0] == 0.17 and top.get_title() == "measured"
    plt.close(fig)
    curve = pd.DataFrame({"targets": [100, 200, 400], "seconds": [1.0, 2.0, 4.0], "ndcg10": [0.1, 0.2, 0.15]})
    fig = plots.curve_with_span(curve, {"targets": 200, "seconds": 2.0}, {"targets": (50, 80), "seconds": (5, 9)},
                                "GPTRec", "the LLM's run", ("blue", "purple"), "NDCG@10")
    left, right = fig.axes
    assert list(left.lines[0].get_xdata()) == [100, 200, 400] and list(right.lines[0].get_xdata()) == [1, 2, 4]
    assert left.lines[1].get_xdata()[0] == 200 and right.lines[1].get_xdata()[0] == 2.0
    assert left.get_xscale() == "log" and left.get_ylabel() == "NDCG@10"
    assert [t.get_text() for t in right.get_legend().get_texts()] == ["the LLM's run", "GPTRec"]
    plt.close(fig)


def test_interval_bars_draw_each_rows_number_with_its_bounds_first_row_on_top():
    import pandas as pd

    numbers = pd.DataFrame({"NDCG@10": [0.5, 0.2], "NDCG@10 low": [0.45, -0.1], "NDCG@10 high": [0.55, 0.3]},
                           index=["GPTRec", "Random"])
    fig, ax = plots.new_figure()
    plots.interval_bars(ax, numbers, "NDCG@10", {"GPTRec": "blue", "Random": "grey"}, label=str.upper)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["RANDOM", "GPTREC"]
    assert [b.get_width() for b in ax.patches] == [0.2, 0.5]
    segments = ax.collections[0].get_segments()  # the error bars, bottom row first
    assert [list(s[:, 0]) for s in segments] == [pytest.approx([-0.1, 0.3]), pytest.approx([0.45, 0.55])]
    plt.close(fig)


def test_the_frontier_holds_each_model_better_than_every_faster_one():
    import itertools

    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(4)
    points = pd.DataFrame({"latency": rng.random(12) * 100, "ndcg": rng.random(12)}, index=[f"m{i}" for i in range(12)])
    # brute force: on the frontier where no other model is both at least as fast and better
    want = {a for a in points.index if not any(points.loc[b, "latency"] <= points.loc[a, "latency"]
                                               and points.loc[b, "ndcg"] > points.loc[a, "ndcg"]
                                               for b in points.index if b != a)}
    got = plots.frontier(points)
    assert set(got) == want
    assert all(points.loc[a, "latency"] <= points.loc[b, "latency"] for a, b in itertools.pairwise(got))
    fig = plots.pareto_figure(points, {n: "blue" for n in points.index}, slow=("m0",))
    ax = fig.axes[0]
    assert len(ax.collections) == 12 and ax.get_xscale() == "log"
    assert sum(c.get_edgecolor().size > 0 and c.get_edgecolor()[0][:3].tolist() == [0, 0, 0]
               for c in ax.collections) == len(got)  # the frontier's dots circled
    plt.close(fig)


def test_tints_of_a_colour_keep_its_hue_and_come_nearer_white_each():
    from matplotlib.colors import rgb_to_hsv, to_rgb

    base = plots.MODEL_COLORS["LLMItemHead"]
    tints = plots.lighter(base, 3)
    assert len(tints) == 3
    h0 = rgb_to_hsv(to_rgb(base))[0]
    for a, b in zip([to_rgb(base), *tints], tints):
        assert sum(b) > sum(a) and all(0 <= x <= 1 for x in b)
        assert abs(rgb_to_hsv(b)[0] - h0) < 0.02


def test_a_model_off_the_frontier_is_told_with_every_model_both_faster_and_better():
    import pandas as pd

    points = pd.DataFrame({"latency": {"a": 1.0, "b": 2.0, "c": 3.0, "d": 500.0, "e": 0.5},
                           "ndcg": {"a": 0.5, "b": 0.7, "c": 0.6, "d": 0.55, "e": 0.2}})
    for name in points.index:  # brute force over every other model
        expected = {o for o in points.index if o != name and points.latency[o] < points.latency[name]
                    and points.ndcg[o] > points.ndcg[name]}
        assert set(plots.dominating(points, name)) == expected
        assert (not expected) == (name in plots.frontier(points))
    words = plots.frontier_words(points, ["d", "b", "x"], label=str.upper)
    assert words == "D is not on it: B and C are faster and better. B is on it."
    points.loc["f"] = [1000.0, 0.1]
    assert plots.frontier_words(points, ["f"]) == "f is not on it: e, a, b, c and d are faster and better."
    assert plots.frontier_words(points, ["c"]) == "c is not on it: b is faster and better."
