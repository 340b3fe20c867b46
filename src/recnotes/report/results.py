"""The results writer: every chapter's key numbers as ``book/results/<chapter>.json``.

The format is DESIGN.md's "Results format": a flat, tidy list of ``records``
(one row per protocol, model, metric, k, seed) and the per-user ``ranks`` of
each evaluated target, so anyone can recompute any rank metric.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from .. import __version__

__all__ = ["record", "write_results", "read_results", "RECORD_KEYS", "results_dir"]

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
        "recnotes_version": __version__, "records": rows,
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
    p = Path(chapter_or_path)
    if not p.suffix:
        p = results_dir() / f"{p}.json"
    return json.loads(p.read_text())
