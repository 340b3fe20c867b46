"""The results writer: every chapter's key numbers as ``book/results/<chapter>.json``.

The format is DESIGN.md's "Results format": a flat, tidy list of ``records``
(one row per protocol, model, metric, k, seed) and the per-user ``ranks`` of
each evaluated target, so anyone can recompute any rank metric.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Union

import numpy as np

from .. import __version__
from ..device import cpu_description
from .environment import package_versions

if TYPE_CHECKING:  # pragma: no cover
    from ..evaluate.protocols import EvalResult

#: one evaluation: a single run, or several runs of the same model keyed by training seed
Evaluation = Union["EvalResult", Mapping[int, "EvalResult"]]

__all__ = ["record", "write_results", "read_results", "RECORD_KEYS", "results_dir", "eval_records",
           "efficiency_records", "test_records", "collect_ranks", "write_evaluation"]

RECORD_KEYS = ("protocol", "model", "metric", "k", "value", "ci_low", "ci_high", "n_users", "seed")


def _plain(x: Any) -> Any:
    """NumPy scalars to Python, NaN to None (JSON has no NaN)."""
    if x is None:
        return None
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return None if math.isnan(x) else x
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def record(protocol: str | None, model: str | None, metric: str, value: float, k: int | None = None,
           ci_low: float | None = None, ci_high: float | None = None, n_users: int | None = None,
           seed: int | str | None = None) -> dict:
    """One tidy row of the results format."""
    return {key: _plain(v) for key, v in zip(
        RECORD_KEYS, (protocol, model, metric, k, value, ci_low, ci_high, n_users, seed))}


def results_dir() -> Path:
    """``book/results`` of the checkout (or ``$RECNOTES_RESULTS``)."""
    import os
    env = os.environ.get("RECNOTES_RESULTS")
    if env:
        return Path(env)
    here = Path.cwd()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file():
            return folder / "book" / "results"
    return here / "results"


def write_results(chapter: str, records: Iterable[Mapping[str, Any]],
                  ranks: Mapping[str, Mapping[str, Iterable[int]]] | None = None, *,
                  dataset: str, profile: str, device: str = "cpu",
                  path: str | Path | None = None, extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``<results_dir>/<chapter>.json`` and return its path.

    Every record must have exactly the keys of :data:`RECORD_KEYS`.
    """
    rows = []
    for i, r in enumerate(records):
        keys = set(r)
        if keys != set(RECORD_KEYS):
            raise ValueError(f"record {i} has keys {sorted(keys)}, expected {list(RECORD_KEYS)}")
        rows.append({k: _plain(r[k]) for k in RECORD_KEYS})
    out = {
        "chapter": chapter, "dataset": dataset, "profile": profile, "device": device,
        "machine": cpu_description(),  # the processor and the flags that decide speed and precision
        "recnotes_version": __version__, "versions": package_versions(), "records": rows,
        "ranks": {p: {m: [int(x) for x in v] for m, v in models.items()}
                  for p, models in (ranks or {}).items()},
    }
    if extra:
        out.update({k: v for k, v in extra.items() if k not in out})
    target = Path(path) if path is not None else results_dir() / f"{chapter}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    return target


def read_results(chapter_or_path: str | Path) -> dict:
    """The results file of a chapter (``"06_llm"``) or at a path, as written by :func:`write_results`."""
    p = Path(chapter_or_path)
    if not p.suffix:
        p = results_dir() / f"{p}.json"
    if not p.is_file():
        raise FileNotFoundError(f"no results file {p}: execute chapter {p.stem} first "
                                f"(python scripts/execute.py {p.stem})")
    return json.loads(p.read_text())


# ------------------------------------------------------------ evaluation outputs -> records
def _runs(evaluation: Evaluation) -> dict[int | None, "EvalResult"]:
    if isinstance(evaluation, Mapping):
        if not evaluation:
            raise ValueError("an evaluation given as {seed: result} is empty")
        runs = dict(sorted(evaluation.items()))
        first = next(iter(runs.values()))
        for s, r in runs.items():
            if (r.protocol, r.model) != (first.protocol, first.model) or not np.array_equal(r.users, first.users):
                raise ValueError(f"run with seed {s} is not the same protocol, model and users as the "
                                 f"first ({first.protocol}, {first.model})")
        return runs
    return {None: evaluation}


def _accuracy_rows(protocol: str, model: str, table, seed) -> list[dict]:
    return [record(protocol, model, row.metric, row.value, k=row.k, ci_low=row.ci_low,
                   ci_high=row.ci_high, n_users=row.n_users, seed=seed) for row in table.itertuples()]


def eval_records(evaluation: Evaluation, n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95,
                 beyond: bool = True) -> list[dict]:
    """Tidy records of one evaluation: accuracy metrics with seeded bootstrap intervals, and
    (protocol P1, ``beyond=True``) coverage, novelty, average popularity and Gini.

    A single :class:`EvalResult` gives rows labelled with ``seed`` (the run's seed, which
    also seeds the bootstrap).  A mapping
    ``{training seed: EvalResult}`` gives rows per seed and rows with ``seed="mean"``,
    whose accuracy values and intervals come from each user's metrics averaged
    over the seeds, and whose beyond-accuracy values are the mean over seeds.
    """
    runs = _runs(evaluation)
    first = next(iter(runs.values()))
    rows: list[dict] = []
    for s, r in runs.items():
        label = seed if s is None else s
        rows += _accuracy_rows(r.protocol, r.model, r.summary(n_bootstrap, seed, level), label)
        if beyond and r.topk is not None:
            rows += [record(r.protocol, r.model, b.metric, b.value, k=b.k, n_users=r.n_users, seed=label)
                     for b in r.beyond_accuracy().itertuples()]
    if None in runs:
        return rows
    from ..evaluate.uncertainty import summary_table
    mean_per_user = sum(r.per_user for r in runs.values()) / len(runs)
    table = summary_table(mean_per_user, n_bootstrap, seed, level)
    rows += _accuracy_rows(first.protocol, first.model, table, "mean")
    if beyond and first.topk is not None:
        per_seed = [r.beyond_accuracy().set_index(["metric", "k"])["value"] for r in runs.values()]
        mean = sum(per_seed) / len(per_seed)
        rows += [record(first.protocol, first.model, m, v, k=k, n_users=first.n_users, seed="mean")
                 for (m, k), v in mean.items()]
    return rows


def efficiency_records(protocol: str | None, model: str, figures: Mapping[str, float],
                       seed: int | str | None = None) -> list[dict]:
    """Records of efficiency figures (a dict from :class:`~recnotes.evaluate.EfficiencyMeter`)."""
    return [record(protocol, model, name, value, seed=seed) for name, value in figures.items()]


def test_records(protocol: str, tests: Iterable[Mapping[str, Any]], *, metric: str, k: int | None = None,
                 seed: int | str | None = None) -> list[dict]:
    """Records of paired tests (``a`` minus ``b``, as :func:`recnotes.report.segments.pairs_table`
    keeps them), so another chapter can quote them: under the model ``"<a> - <b>"``, the metric
    ``"<metric> difference"`` with its interval, then its ``"p"`` and, where adjusted, its
    ``"p (Holm)"``."""
    rows = []
    for t in tests:
        model = f"{t['a']} - {t['b']}"
        rows.append(record(protocol, model, f"{metric} difference", t["mean_diff"], k=k, ci_low=t["ci_low"],
                           ci_high=t["ci_high"], n_users=t["n"], seed=seed))
        rows.append(record(protocol, model, f"{metric} difference p", t["p_value"], k=k, n_users=t["n"], seed=seed))
        if "p_holm" in t:
            rows.append(record(protocol, model, f"{metric} difference p (Holm)", t["p_holm"], k=k, n_users=t["n"],
                               seed=seed))
    return rows


def collect_ranks(evaluations: Iterable[Evaluation]) -> dict[str, dict[str, list[int]]]:
    """``{protocol: {model: ranks}}``: each user's 0-based target rank, users ascending
    (for several seeds, the run with the smallest seed)."""
    out: dict[str, dict[str, list[int]]] = {}
    for evaluation in evaluations:
        r = next(iter(_runs(evaluation).values()))
        if r.model in out.setdefault(r.protocol, {}):
            raise ValueError(f"model {r.model!r} is evaluated twice under {r.protocol}")
        out[r.protocol][r.model] = [int(x) for x in r.ranks]
    return out


def write_evaluation(chapter: str, evaluations: Iterable[Evaluation], *, dataset: str, profile: str,
                     device: str = "cpu", efficiency: Iterable[Mapping[str, Any]] = (),
                     n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95,
                     path: str | Path | None = None, extra: Mapping[str, Any] | None = None) -> Path:
    """Turn evaluations (and efficiency records) into the results format and write
    ``<results_dir>/<chapter>.json``; returns its path.  See :func:`eval_records`."""
    evaluations = list(evaluations)
    ranks = collect_ranks(evaluations)
    rows = [row for e in evaluations for row in eval_records(e, n_bootstrap, seed, level)]
    rows += [dict(r) for r in efficiency]
    return write_results(chapter, rows, ranks, dataset=dataset, profile=profile, device=device,
                         path=path, extra=extra)
