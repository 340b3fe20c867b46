"""Every quoted fact has one home: one record, one key, the same value on every page.

A fact is a record of one chapter's results (a metric of a model under a protocol, a
training time, a cost ratio).  The chapter that measures it glues it with its key
(:func:`glue_fact`, with the value it records); a chapter that quotes it
reads the owner's results file (:func:`quote`).  Either way the glued output carries
the fact's key and value (:data:`recnotes.report.glue.FACT_METADATA`), so
:func:`collect` lists every glued value of the executed chapters with the fact behind
it, and :func:`conflicts` finds a fact glued with two values, or one name glued with
two values on two pages: what ``tests/test_facts.py`` checks on the committed book.

``python -m recnotes.report.facts [book/]`` prints the list.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from .glue import FACT_METADATA, GLUE_PREFIX, glue
from .lookup import ANY, Results, load, value

__all__ = ["fact_key", "parse_key", "significant", "glue_fact", "quote", "collect", "conflicts", "owner_mismatches"]

_FIELDS = ("protocol", "model", "metric", "k", "seed")


def fact_key(chapter: str, *, metric: str, model: Any = ANY, protocol: Any = ANY, k: Any = ANY,
             seed: Any = ANY, field: str = "value") -> str:
    """``"06_llm | protocol=P2 | model=Random | metric=NDCG | k=10"``: the owner chapter and
    the fields that select the record (fields left at ``ANY`` are not part of the key), and
    the record's field where it is not the value (``field=n_users``)."""
    given = {"protocol": protocol, "model": model, "metric": metric, "k": k, "seed": seed}
    parts = [f"{f}={given[f]}" for f in _FIELDS if given[f] is not ANY]
    if field != "value":
        parts.append(f"field={field}")
    return " | ".join([chapter, *parts])


def parse_key(key: str) -> tuple[str, dict]:
    """The owner chapter and the selector of a key made by :func:`fact_key` (values read
    back as the results file holds them: ``None`` for a missing field, numbers as numbers)."""
    chapter, *parts = key.split(" | ")
    selector: dict[str, Any] = {}
    for part in parts:
        field, _, text = part.partition("=")
        if text == "None":
            selector[field] = None
        elif field == "k" or (field == "seed" and text.lstrip("-").isdigit()):
            selector[field] = int(text)
        else:
            selector[field] = text
    return chapter, selector


def _chapter_of(results: Results) -> str:
    if isinstance(results, Mapping):
        return str(results["chapter"])
    return Path(results).stem


def significant(x: float, digits: int) -> float:
    """``x`` rounded to ``digits`` significant digits (3,077.7 -> 3,100.0 with 2)."""
    return float(f"{x:.{digits}g}") if x and math.isfinite(x) else x


def _glue(name: str, chapter: str, raw: float, scale: float, digits: int | None, selector: dict) -> float:
    shown = raw * scale if digits is None else significant(raw * scale, digits)
    glue(name, shown, fact=fact_key(chapter, **selector), raw=raw)
    return raw


def glue_fact(name: str, chapter: str, raw: float, *, scale: float = 1.0, digits: int | None = None,
              **selector: Any) -> float:
    """Glue a fact this chapter (``chapter``) measures, ``raw``, which it records under
    ``selector`` in its results: times ``scale`` (1/60 for minutes from seconds, say), and
    rounded to ``digits`` significant digits where given (a ratio that moves from run to
    run).  The book's test checks that the results hold that record.  Returns ``raw``."""
    return _glue(name, chapter, raw, scale, digits, selector)


def quote(name: str, results: Results, *, scale: float = 1.0, digits: int | None = None,
          **selector: Any) -> float:
    """Glue a fact another chapter measured, read from its results (a chapter name such as
    ``"06_llm"`` or its loaded results), as :func:`glue_fact` glues it; returns the record's
    value."""
    res = load(results)
    return _glue(name, _chapter_of(res), value(res, **selector), scale, digits, selector)


def _glued(cell: Mapping) -> Iterable[tuple[str, Any, dict | None]]:
    for out in cell.get("outputs", []):
        meta = out.get("metadata", {})
        if "scrapbook" not in meta:
            continue
        data = out.get("data", {})
        shown = data.get(GLUE_PREFIX + "text/plain", data.get("text/plain"))
        yield meta["scrapbook"]["name"], shown, meta.get(FACT_METADATA)


def collect(book: str | Path = "book") -> pd.DataFrame:
    """Every glued value of the executed chapters ``book/*.ipynb``: its page, name, the
    value as glued (its text), and where it quotes a fact, the fact's key, owner chapter
    and value in the record's unit."""
    rows = []
    for path in sorted(Path(book).glob("*.ipynb")):
        nb = json.loads(path.read_text())
        for cell in nb.get("cells", []):
            for name, shown, fact in _glued(cell):
                key = fact["key"] if fact else None
                rows.append({"page": path.stem, "name": name, "shown": shown, "fact": key,
                             "owner": parse_key(key)[0] if key else None,
                             "value": fact["value"] if fact else None})
    return pd.DataFrame(rows, columns=["page", "name", "shown", "fact", "owner", "value"])


def _same(values: Iterable[Any]) -> bool:
    values = list(values)
    first = values[0]
    for v in values[1:]:
        if isinstance(first, (int, float)) and isinstance(v, (int, float)):
            if not math.isclose(first, v, rel_tol=1e-9, abs_tol=1e-12):
                return False
        elif v != first:
            return False
    return True


def conflicts(glued: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`collect` behind a contradiction: one fact glued with two values,
    or one glue name with two values on two pages (``cpu_note`` and the like are page
    notes, not facts, but they too must read the same)."""
    bad = []
    facts = glued.dropna(subset=["fact"])
    for _, group in facts.groupby("fact"):
        if not _same(group["value"]):
            bad.append(group)
    for _, group in glued.groupby("name"):
        if group["page"].nunique() > 1 and not _same(group["shown"]):
            bad.append(group)
    return pd.concat(bad) if bad else glued.iloc[:0]


def owner_mismatches(glued: pd.DataFrame, results: str | Path) -> pd.DataFrame:
    """The glued facts whose value is not the owner's record in ``results`` (a folder of
    results files), or whose owner has no such record."""
    bad = []
    for key, group in glued.dropna(subset=["fact"]).groupby("fact"):
        chapter, selector = parse_key(key)
        try:
            want = value(Path(results) / f"{chapter}.json", **selector)
        except (KeyError, ValueError, FileNotFoundError):
            bad.append(group.assign(record=None))
            continue
        wrong = [not _same([want, v]) for v in group["value"]]
        if any(wrong):
            bad.append(group[wrong].assign(record=want))
    return pd.concat(bad) if bad else glued.iloc[:0].assign(record=None)


def main(argv: list[str] | None = None) -> int:
    """``python -m recnotes.report.facts [BOOK]``: print every quoted fact of the executed chapters
    in ``BOOK`` (default ``book``) and any contradiction; exit 1 on a contradiction."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__.split("\n")[0])
    parser.add_argument("book", nargs="?", default="book", type=Path, help="the folder of executed chapters")
    glued = collect(parser.parse_args(argv).book)
    facts = glued.dropna(subset=["fact"]).sort_values(["fact", "page"])
    with pd.option_context("display.max_rows", None, "display.max_colwidth", 80, "display.width", 200):
        print(f"{len(glued)} glued values on {glued['page'].nunique()} pages; "
              f"{facts['fact'].nunique()} facts quoted with their record:")
        print(facts[["fact", "page", "name", "shown"]].to_string(index=False))
    bad = conflicts(glued)
    if len(bad):
        print("\nCONTRADICTIONS:")
        print(bad.to_string(index=False))
    return 1 if len(bad) else 0


if __name__ == "__main__":
    raise SystemExit(main())
