"""Read one number (or a small table) from another chapter's results.

Chapters that answer questions with numbers measured elsewhere (the FAQ) read
``book/results/<chapter>.json`` (``$RECNOTES_RESULTS`` in tests) instead of
typing values.  :func:`value` returns exactly one number and refuses to guess:
no match, or several that differ in more than the seed, is an error that says
what the file holds.  When matches differ only in their seed, the seed-averaged
row (``seed="mean"``) wins, then the row without a seed, then the smallest seed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Union

import pandas as pd

from .results import RECORD_KEYS, read_results, results_dir

__all__ = ["ANY", "ResultsMissing", "load", "records", "select", "value", "wide", "parse_metric"]


class _Any:
    """Matches every value of a field (``None`` is a value: efficiency rows have no protocol)."""

    def __repr__(self) -> str:
        return "ANY"


ANY: Any = _Any()

Results = Union[str, Path, Mapping[str, Any]]


class ResultsMissing(FileNotFoundError):
    """A chapter's results file does not exist yet: execute that chapter first."""


def load(chapter: Results, dataset: str | None = None) -> dict:
    """The results of ``chapter`` (a chapter name such as ``"06_llm"``, a path, or an
    already loaded results dict, returned as is); with ``dataset``, they must be that
    dataset's (a page that quotes another chapter's numbers on another dataset stops)."""
    if isinstance(chapter, Mapping):
        return dict(chapter)
    res = _read(chapter)
    if dataset is not None and str(res["dataset"]) != str(dataset):
        raise ResultsMissing(f"the results of {Path(chapter).stem} are for {res['dataset']}, not {dataset}: "
                             f"execute that chapter on {dataset} first, then this one")
    return res


def _read(chapter) -> dict:
    path = Path(chapter)
    if not path.suffix:
        path = results_dir() / f"{path}.json"
    if not path.is_file():
        name = path.stem
        raise ResultsMissing(
            f"no results of chapter {name!r}: {path} does not exist. Execute that chapter first "
            f"(`python scripts/execute.py {name}` or `make execute CHAPTERS={name}`), then this one.")
    return read_results(path)


def records(chapter: Results) -> pd.DataFrame:
    """All records of a chapter as a frame with the columns of the results format."""
    return pd.DataFrame(load(chapter)["records"], columns=list(RECORD_KEYS))


def _matches(column: pd.Series, wanted: Any) -> pd.Series:
    if wanted is ANY:
        return pd.Series(True, index=column.index)
    if wanted is None:
        return column.isna()
    if isinstance(wanted, (int, float)) and not isinstance(wanted, bool):
        return pd.to_numeric(column, errors="coerce") == wanted
    return column == wanted


def select(chapter: Results, *, model: Any = ANY, metric: Any = ANY, protocol: Any = ANY,
           k: Any = ANY, seed: Any = ANY) -> pd.DataFrame:
    """The records that match every given field (``ANY`` matches everything, ``None``
    only missing values)."""
    frame = records(chapter)
    keep = pd.Series(True, index=frame.index)
    for field, wanted in (("model", model), ("metric", metric), ("protocol", protocol), ("k", k),
                          ("seed", seed)):
        keep &= _matches(frame[field], wanted)
    return frame[keep]


def _seed_order(seed: Any) -> tuple:
    if seed == "mean":
        return (0, 0)
    if seed is None or (isinstance(seed, float) and math.isnan(seed)):
        return (1, 0)
    return (2, seed if isinstance(seed, (int, float)) else math.inf)


def _describe(frame: pd.DataFrame) -> str:
    return "; ".join(f"protocol={r.protocol!r} model={r.model!r} metric={r.metric!r} k={r.k!r} "
                     f"seed={r.seed!r}" for r in frame.head(8).itertuples())


def value(chapter: Results, *, metric: str, model: Any = ANY, protocol: Any = ANY, k: Any = ANY,
          seed: Any = ANY, field: str = "value") -> float:
    """Exactly one number of a chapter's results (``field`` may also be ``ci_low``,
    ``ci_high`` or ``n_users``); see the module docstring for the seed rule."""
    if field not in RECORD_KEYS:
        raise ValueError(f"unknown field {field!r}; choose one of {RECORD_KEYS}")
    res = load(chapter)
    found = select(res, model=model, metric=metric, protocol=protocol, k=k, seed=seed)
    where = res.get("chapter", str(chapter))
    asked = f"model={model!r} metric={metric!r} protocol={protocol!r} k={k!r} seed={seed!r}"
    if found.empty:
        frame = records(res)
        of_metric = frame[frame["metric"] == metric]
        raise KeyError(
            f"results of {where!r} have no record with {asked}. Models with metric {metric!r}: "
            f"{sorted(set(of_metric['model'].dropna())) or 'none'}; protocols: "
            f"{sorted(set(of_metric['protocol'].dropna())) or 'none'}; all metrics: "
            f"{sorted(set(frame['metric']))}")
    others = found.drop(columns=["value", "ci_low", "ci_high", "n_users", "seed"])
    if len(others.drop_duplicates()) > 1:
        raise ValueError(f"results of {where!r}: {len(found)} records match {asked}; say which "
                         f"(protocol=, k=, model=): {_describe(found)}")
    best = min(found.itertuples(index=False), key=lambda r: _seed_order(r.seed))
    out = getattr(best, field)
    if out is None or (isinstance(out, float) and math.isnan(out)):
        raise ValueError(f"results of {where!r}: the record with {asked} has no {field}")
    return out


def parse_metric(spec: str) -> tuple[str, Any]:
    """``"NDCG@10"`` -> ``("NDCG", 10)``; ``"params"`` -> ``("params", ANY)``."""
    name, _, k = spec.partition("@")
    return name, (int(k) if k else ANY)


def wide(chapter: Results, metrics: Iterable[str], models: Iterable[str] | None = None, *,
         protocol: Any = ANY, seed: Any = ANY) -> pd.DataFrame:
    """A model x metric table (metrics as ``"NDCG@10"`` or ``"params"``), one :func:`value`
    per cell; a cell the results do not have is NaN.  ``models`` defaults to every model
    that has at least one of the metrics under ``protocol``, in the order the file lists them."""
    res = load(chapter)
    specs = [(m, *parse_metric(m)) for m in metrics]
    if models is None:
        frame = select(res, protocol=protocol, seed=seed)
        names = {name for _, name, _ in specs}
        models = list(dict.fromkeys(frame.loc[frame["metric"].isin(names), "model"].dropna()))
    table = {}
    for model in models:
        row = {}
        for label, name, k in specs:
            try:
                row[label] = value(res, model=model, metric=name, k=k, protocol=protocol, seed=seed)
            except KeyError:
                row[label] = math.nan
        table[model] = row
    out = pd.DataFrame.from_dict(table, orient="index", columns=[s[0] for s in specs])
    out.index.name = "model"
    return out
