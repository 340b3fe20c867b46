"""recnotes.report.phrases: the sentence follows the test, never the raw means."""

from __future__ import annotations

import numpy as np

from recnotes.evaluate import paired_test
from recnotes.report.phrases import compared


def test_the_phrase_follows_the_p_value_and_the_sign():
    assert compared({"mean_diff": 0.02, "p_value": 0.001}, "Popularity") == "significantly better than Popularity"
    assert compared({"mean_diff": -0.02, "p_value": 0.001}, "EASE") == "significantly worse than EASE"
    assert compared({"mean_diff": 0.02, "p_value": 0.2}, "EASE") == "not significantly different from EASE"
    holm = {"mean_diff": 0.02, "p_value": 0.01, "p_holm": 0.08}
    assert compared(holm, "EASE", key="p_holm") == "not significantly different from EASE"
    assert compared({"mean_diff": 0.5, "p_value": 0.0}, "scratch", better="higher") == "significantly higher than scratch"


def test_a_real_paired_test_of_a_clear_and_of_no_difference():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 400)
    clear = paired_test(base + 0.1, base, seed=0)
    none = paired_test(base + rng.normal(0, 0.01, 400), base, seed=0)
    assert compared(clear, "B") == "significantly better than B"
    assert compared(none, "B") == "not significantly different from B"


def test_signed_differences_have_three_significant_digits_and_no_exponent():
    from recnotes.report.phrases import signed

    assert signed(0.0123456) == "+0.0123"
    assert signed(-1.58e-05) == "-0.0000158"
    assert signed(0.0) == "0"
    assert signed(-0.25) == "-0.250"


def test_how_many_reads_as_a_reader_would_write_it():
    from recnotes.report.phrases import how_many

    assert how_many(5, 5, "segments") == "all 5 segments"
    assert how_many(2, 2, "models") == "both models"
    assert how_many(0, 4, "segments") == "none of the 4 segments"
    assert how_many(3, 5, "segments") == "3 of the 5 segments"


def test_pairs_sentences_say_each_tests_outcome_once():
    from recnotes.report.phrases import pairs_sentences

    tests = [{"a": "Text", "b": "Genres", "mean_diff": 0.01, "p_holm": 0.4},
             {"a": "Text", "b": "Random", "mean_diff": 0.2, "p_holm": 0.001},
             {"a": "Genres", "b": "Random", "mean_diff": 0.15, "p_holm": 0.01}]
    text = pairs_sentences(tests)
    assert text == ("Text and Genres are significantly better than Random. "
                    "Text and Genres are not significantly different.")
    # the sign decides who is better; two ties read as one sentence
    flipped = [{"a": "Random", "b": "Text", "mean_diff": -0.2, "p_holm": 0.001},
               {"a": "Genres", "b": "Text", "mean_diff": 0.0, "p_holm": 0.9},
               {"a": "Genres", "b": "Random", "mean_diff": 0.01, "p_holm": 0.3}]
    assert pairs_sentences(flipped) == ("Text is significantly better than Random. The data cannot tell apart "
                                        "Genres and Text, nor Genres and Random.")


def test_placed_says_where_a_model_stands_as_its_test_supports():
    from recnotes.report.phrases import placed

    assert placed({"mean_diff": 0.1, "p_holm": 0.01}, "EASE") == "above EASE"
    assert placed({"mean_diff": -0.1, "p_holm": 0.01}, "EASE") == "below EASE"
    assert placed({"mean_diff": 0.1, "p_holm": 0.2}, "EASE") == "not significantly different from EASE"
    # the raw p-value when asked: Holm's adjusted one is not read then
    assert placed({"mean_diff": 0.1, "p_value": 0.01, "p_holm": 0.2}, "chance", key="p_value") == "above chance"


def test_speed_words_call_a_ratio_within_ten_percent_a_tie():
    from recnotes.report.phrases import speed_words

    assert [speed_words(r) for r in (1.5, 1.05, 1 / 1.05, 0.5)] == ["faster", "about as fast", "about as fast",
                                                                     "slower"]


def test_standing_groups_the_models_above_level_and_below_in_that_order():
    from recnotes.report.phrases import standing

    up, level, down = ({"mean_diff": d, "p_holm": p} for d, p in ((0.1, 0.001), (0.01, 0.4), (-0.1, 0.002)))
    assert standing({"Popularity": up, "EASE": level, "LSTM": down, "GPTRec": down}) == \
        "above Popularity, not significantly different from EASE, and below LSTM and GPTRec"
    assert standing({"EASE": down, "GPTRec": down}) == "below EASE and GPTRec"
    assert standing({"Popularity": level, "GPTRec": down}) == \
        "not significantly different from Popularity and below GPTRec"
    # a significant p with the difference's sign deciding the side
    assert standing({"A": {"mean_diff": -0.2, "p_value": 0.01}}, key="p_value") == "below A"
