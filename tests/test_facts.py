"""One fact, one number: every glued fact carries its key and value, a fact glued with two
values (or a name glued differently on two pages) is found, and on the committed book every
quoted fact is its owner's record and no number is quoted without its key."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from recnotes.report.facts import collect, conflicts, fact_key, glue_fact, owner_mismatches, parse_key, quote
from recnotes.report.glue import FACT_METADATA, GLUE_PREFIX
from recnotes.report.lookup import load
from recnotes.report.results import record

ROOT = Path(__file__).resolve().parents[1]
BOOK, RESULTS = ROOT / "book", ROOT / "book" / "results"


def outputs_of(call):
    """The notebook outputs (nbformat dicts) that ``call()`` displays in a kernel."""
    from IPython.utils.capture import capture_output

    with capture_output() as out:
        call()
    return [{"output_type": "display_data", "data": o.data, "metadata": o.metadata} for o in out.outputs]


def write_book(folder: Path, pages: dict[str, list]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for page, outputs in pages.items():
        cells = [{"cell_type": "code", "source": "", "metadata": {}, "outputs": outputs, "execution_count": 1}]
        (folder / f"{page}.ipynb").write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4,
                                                          "nbformat_minor": 5}))
    return folder


OWNER_ROWS = [record(None, "GPTRec", "train_seconds", 94.5, seed="mean"),
              record("P2", "LLM", "speed_ratio", 3077.7)]


def test_keys_read_back_to_the_selector_that_made_them():
    key = fact_key("09_evaluation", model="GPTRec", metric="train_seconds", protocol=None, k=10, seed="mean")
    assert key == "09_evaluation | protocol=None | model=GPTRec | metric=train_seconds | k=10 | seed=mean"
    assert parse_key(key) == ("09_evaluation", {"protocol": None, "model": "GPTRec", "metric": "train_seconds",
                                                "k": 10, "seed": "mean"})
    assert parse_key(fact_key("07_x", metric="HR", seed=3))[1] == {"metric": "HR", "seed": 3}


def test_owner_and_quoting_page_glue_one_fact_with_its_key(shell, tmp_path):
    owner = {"chapter": "09_evaluation", "records": OWNER_ROWS}
    pages = {"09_evaluation": outputs_of(lambda: glue_fact("gpt_train_s", "09_evaluation", 94.5,
                                                           model="GPTRec", metric="train_seconds")),
             "11_faq": outputs_of(lambda: quote("q_gpt_train_min", owner, scale=1 / 60, model="GPTRec",
                                                metric="train_seconds"))}
    meta = pages["11_faq"][0]["metadata"]
    assert meta["scrapbook"]["name"] == "q_gpt_train_min"
    assert meta[FACT_METADATA] == {"key": "09_evaluation | model=GPTRec | metric=train_seconds", "value": 94.5}
    assert float(pages["11_faq"][0]["data"][GLUE_PREFIX + "text/plain"]) == pytest.approx(94.5 / 60)
    glued = collect(write_book(tmp_path / "book", pages))
    assert list(glued["page"]) == ["09_evaluation", "11_faq"]
    assert glued["fact"].nunique() == 1 and set(glued["owner"]) == {"09_evaluation"}
    assert conflicts(glued).empty
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "09_evaluation.json").write_text(json.dumps(owner))
    assert owner_mismatches(glued, tmp_path / "results").empty


def test_a_fact_measured_twice_with_two_values_is_a_contradiction(shell, tmp_path):
    pages = {"09_evaluation": outputs_of(lambda: glue_fact("gpt_train_s", "09_evaluation", 94.5,
                                                           model="GPTRec", metric="train_seconds")),
             "10_outlook": outputs_of(lambda: glue_fact("gpt_train_high", "09_evaluation", 99.8,
                                                        model="GPTRec", metric="train_seconds"))}
    glued = collect(write_book(tmp_path / "book", pages))
    bad = conflicts(glued)
    assert sorted(bad["page"]) == ["09_evaluation", "10_outlook"]
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "09_evaluation.json").write_text(json.dumps({"records": OWNER_ROWS}))
    assert list(owner_mismatches(glued, tmp_path / "results")["page"]) == ["10_outlook"]


def test_one_name_glued_with_two_values_on_two_pages_is_a_contradiction(shell, tmp_path):
    from recnotes.report.glue import glue

    pages = {"05_code": outputs_of(lambda: glue("n_users", 943)), "09_evaluation": outputs_of(lambda: glue("n_users", 942)),
             "10_outlook": outputs_of(lambda: glue("other", 1))}
    bad = conflicts(collect(write_book(tmp_path / "book", pages)))
    assert sorted(bad["page"]) == ["05_code", "09_evaluation"]


# ------------------------------------------------------------------ the committed book
@pytest.fixture(scope="module")
def book_glued():
    glued = collect(BOOK)
    if glued.empty:
        pytest.fail("no executed chapters in book/: run `make execute` first")
    return glued


def test_the_book_glues_no_fact_with_two_values(book_glued):
    bad = conflicts(book_glued)
    assert bad.empty, "contradictions on the rendered pages:\n" + bad.to_string()


def test_every_quoted_fact_is_its_owners_record(book_glued):
    bad = owner_mismatches(book_glued, RESULTS)
    assert bad.empty, "glued facts that are not their owner's record:\n" + bad.to_string()
    quoted = book_glued.dropna(subset=["fact"])
    assert (quoted["page"] != quoted["owner"]).sum() >= 20  # the pages do quote each other


def _number(text):
    try:
        x = float(text)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) and x != round(x) else None


def test_no_page_quotes_another_chapters_number_without_its_key(book_glued):
    """A non-integer number glued without a fact key that equals a record of another chapter,
    and of none of its own page's, was copied by value: it would not follow its owner when the
    owner's number changes."""
    by_value: dict[float, set] = {}
    for path in sorted(RESULTS.glob("*.json")):
        for r in load(path)["records"]:
            v = r["value"]
            if isinstance(v, float) and math.isfinite(v) and v != round(v):
                by_value.setdefault(round(v, 12), set()).add(path.stem)
    copied = []
    for row in book_glued[book_glued["fact"].isna()].itertuples():
        x = _number(row.shown)
        if x is None:
            continue
        owners = by_value.get(round(x, 12), set())
        if owners and row.page not in owners:  # not a record of its own page
            copied.append((row.page, row.name, row.shown, sorted(owners)))
    assert not copied, f"numbers quoted without their fact key (page, name, value, owners): {copied}"


def test_the_list_of_facts_prints(capsys):
    from recnotes.report.facts import main

    main([str(BOOK)])
    out = capsys.readouterr().out
    assert "facts quoted with their record" in out
    frame = collect(BOOK)
    assert isinstance(frame, pd.DataFrame) and len(frame) > 300


def test_prose_shows_a_metric_with_the_tables_three_significant_digits(book_glued):
    """The tables print NDCG, HR and MRR with three significant digits (``fmt``: 0.0945); a
    sentence that glues one of those records prints the same digits (``#.3g``), not ``.3f``
    (0.094), so a reader never sees one number two ways."""
    import re

    metric_values = {round(r["value"], 12) for path in RESULTS.glob("*.json") for r in load(path)["records"]
                     if r["metric"] in ("NDCG", "HR", "MRR") and isinstance(r["value"], float) and r["value"]}
    shown = {(r.page, r.name): _number(r.shown) for r in book_glued.itertuples()}
    wrong = []
    for path in sorted(BOOK.glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        prose = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        for name, spec in re.findall(r"\{glue:text\}`([^`:]+):([^`]+)`", prose):
            x = shown.get((path.stem, name))
            if x is not None and round(x, 12) in metric_values and spec != "#.3g":
                wrong.append((path.stem, name, spec))
    assert not wrong, f"metric values glued with other digits than the tables' (page, name, format): {wrong}"


def test_a_records_other_field_is_its_own_fact():
    key = fact_key("07_applications", model="Text", metric="HR", protocol="P1-cold", k=10, field="n_users")
    assert key.endswith("| field=n_users")
    assert parse_key(key)[1]["field"] == "n_users"


def test_a_volatile_ratio_is_shown_to_its_significant_digits_and_keeps_its_value(shell):
    from recnotes.report.facts import significant

    assert significant(3077.72, 2) == 3100.0 and significant(0.012345, 3) == 0.0123 and significant(0.0, 2) == 0.0
    owner = {"chapter": "06_llm", "records": OWNER_ROWS}
    out = outputs_of(lambda: quote("ratio", owner, digits=2, model="LLM", metric="speed_ratio", protocol="P2"))
    assert out[0]["data"][GLUE_PREFIX + "text/plain"] == "3100.0"
    assert out[0]["metadata"][FACT_METADATA]["value"] == 3077.7
