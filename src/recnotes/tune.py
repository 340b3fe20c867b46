"""``python -m recnotes.tune MODEL``: one search, on equal terms, for every trained model.

Re-evaluations the field trusts ask that every baseline be tuned as carefully
as the new model {Ferrari Dacrema et al. 2019}.  So ItemKNN, EASE, LSTM and
GPTRec get the same kind of search with the same number of trials: a seeded
random search of ``N_TRIALS`` configurations over the space in :data:`SPACES`,
trial 0 being the previous default.  A trial trains with seed 0 on the
training sequences and is scored by NDCG@10 on the **validation** items (each
user's second-to-last film, full ranking, seen films masked); the test items
are never looked at.

For the neural models a trial counts only if it reaches its best epoch within
the time the previous default needs to reach its own, on the same machine:
the previous default trained with the previous kernels
(:func:`recnotes.models.kernels.reference`), as before this search.  Time to
the best epoch is counted as best epoch x seconds per epoch, the seconds per
epoch of the trial and of the previous default measured back to back in the
same process right after the trial (two epochs each, the second one timed),
so that whatever else the machine is doing weighs on both alike.  A trial
still training after three times the budget is stopped and marked over
budget.  The winner is the eligible trial with the highest validation NDCG@10.

The record (every trial's configuration, validation NDCG@10, seconds and best
epoch, plus the space, the budget and the machine) is written to
``book/tuning/<MODEL>.json`` after every trial, so an interrupted search
resumes; the book renders it, and ``make test`` checks that the ``Config``
defaults in :mod:`recnotes.experiments` equal its winners.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from . import __version__
from .device import cpu_description
from .experiments import CONFIGS, ExperimentConfig, NeuralConfig, load_split, run
from .safeio import write_atomic

__all__ = ["Param", "SPACES", "PREVIOUS_DEFAULTS", "N_TRIALS", "sample_trials", "tune", "read_record",
           "winner", "defaults_match", "RECORD_DIR", "main"]

N_TRIALS = 16  #: trials per model, the same for every model
RECORD_DIR = Path(__file__).resolve().parents[2] / "book" / "tuning"


@dataclass(frozen=True)
class Param:
    """One dimension of a search space: ``choice`` of values, ``uniform`` or ``log`` in [low, high]
    (``integer`` rounds; ``digits`` rounds floats so a configuration reads well)."""

    name: str
    kind: str
    values: tuple = ()
    low: float = 0.0
    high: float = 0.0
    integer: bool = False
    digits: int = 3

    def draw(self, rng: np.random.Generator) -> Any:
        if self.kind == "choice":
            v = self.values[int(rng.integers(len(self.values)))]
            return v.item() if isinstance(v, np.generic) else v
        if self.kind == "uniform":
            x = rng.uniform(self.low, self.high)
        elif self.kind == "log":
            x = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            raise ValueError(f"unknown parameter kind {self.kind!r}")
        return int(round(x)) if self.integer else float(f"{x:.{self.digits}g}")

    def describe(self) -> str:
        if self.kind == "choice":
            return f"{self.name} in {{{', '.join(str(v) for v in self.values)}}}"
        scale = "log-uniform" if self.kind == "log" else "uniform"
        return f"{self.name} {scale} in [{self.low:g}, {self.high:g}]" + (" (integer)" if self.integer else "")


_TRAINING = (
    Param("lr", "log", low=3e-4, high=5e-3),
    Param("weight_decay", "choice", values=(0.0, 0.01, 0.1)),
    Param("batch_size", "choice", values=(16, 32, 64, 128)),
    Param("max_epochs", "choice", values=(40, 80)),  # the cosine decay spans the same horizon
)

#: the search space of each trained model
SPACES: dict[str, tuple[Param, ...]] = {
    "ItemKNN": (Param("k", "log", low=5, high=1000, integer=True),
                Param("shrink", "uniform", low=0, high=200, digits=3)),
    "EASE": (Param("l2", "log", low=1, high=5000),),
    "LSTM": (Param("embedding_dim", "choice", values=(32, 64, 128)),
             Param("hidden", "choice", values=(64, 128, 256)),
             Param("n_layers", "choice", values=(1, 2)),
             Param("max_len", "choice", values=(50, 100, 200)),
             Param("dropout", "uniform", low=0.1, high=0.5, digits=2)) + _TRAINING,
    "GPTRec": (Param("dim", "choice", values=(64, 96, 128)),
               Param("n_layers", "choice", values=(1, 2, 3)),
               Param("n_heads", "choice", values=(1, 2, 4)),
               Param("ffn_mult", "choice", values=(2, 4)),
               Param("max_len", "choice", values=(50, 100, 200)),
               Param("dropout", "uniform", low=0.1, high=0.5, digits=2)) + _TRAINING,
}

#: the defaults before this search (trial 0 of each model, and the time budget's reference)
PREVIOUS_DEFAULTS: dict[str, dict[str, Any]] = {
    "ItemKNN": {"k": 10, "shrink": 0.0},
    "EASE": {"l2": 100.0},
    "LSTM": {"embedding_dim": 50, "hidden": 100, "n_layers": 2, "max_len": 50, "dropout": 0.2,
             "lr": 1e-3, "weight_decay": 0.1, "batch_size": 16, "max_epochs": 40},
    "GPTRec": {"dim": 64, "n_layers": 2, "n_heads": 2, "ffn_mult": 4, "max_len": 50, "dropout": 0.3,
               "lr": 1e-3, "weight_decay": 0.1, "batch_size": 16, "max_epochs": 40},
}


def _config(model: str, params: dict[str, Any], profile: str) -> ExperimentConfig:
    values = dict(params)
    if "max_epochs" in values:
        values["decay_epochs"] = values["max_epochs"]
    return CONFIGS[model](seed=0, profile=profile, **values)


def sample_trials(model: str, n_trials: int = N_TRIALS, seed: int = 0) -> list[dict[str, Any]]:
    """The trials' parameters: the previous default, then ``n_trials - 1`` seeded random draws."""
    if model not in SPACES:
        raise ValueError(f"no search space for {model!r}; choose one of {sorted(SPACES)}")
    rng = np.random.default_rng([seed, sum(map(ord, model))])
    trials = [dict(PREVIOUS_DEFAULTS[model])]
    while len(trials) < n_trials:
        params = {p.name: p.draw(rng) for p in SPACES[model]}
        if "n_heads" in params and params["dim"] % params["n_heads"]:
            continue
        if params not in trials:
            trials.append(params)
    return trials


def epoch_seconds(model: str, params: dict[str, Any], split, previous_kernels: bool = False) -> float:
    """Seconds of one training epoch (validation included) of a configuration: two epochs are
    trained and the second is timed (the first pays for warming up)."""
    import contextlib
    from dataclasses import replace

    from .models.kernels import reference
    from .models.training import seed_everything, train

    config = _config(model, params, "full")
    built = config.build()
    seed_everything(0)
    built.build(split.n_items)
    cfg = replace(config.train_config(), max_epochs=2, patience=10)
    with reference() if previous_kernels else contextlib.nullcontext():
        history = train(built, split, cfg, progress=False)
    return float(history[-1]["seconds"])


def _trial(model: str, params: dict[str, Any], profile: str, split, budget: dict | None) -> dict:
    """Train one configuration (seed 0) and score it on the validation items; for a neural model,
    also probe its epoch time beside the previous default's and apply the time budget."""
    from .evaluate import evaluate_full

    config = _config(model, params, profile)
    start = time.perf_counter()
    if isinstance(config, NeuralConfig):
        built = config.build()
        built.fit(split, progress=False, max_seconds=None if budget is None else 3 * budget["seconds"])
        history = built.history
        fitted = built
    else:
        fitted = config.build().fit(split)
        history = []
    seconds = time.perf_counter() - start
    valid = float(evaluate_full(fitted, split, stage="valid", ks=(10,)).per_user["NDCG@10"].mean())
    row = {"params": params, "valid_ndcg10": valid, "train_seconds": seconds}
    scored = [h for h in history if h.get("monitor") is not None]
    if scored:
        best = max(scored, key=lambda h: h["monitor"])
        row["best_epoch"] = best["epoch"]
        row["epochs"] = len(history)
        row["seconds_to_best"] = sum(h["seconds"] for h in history if h["epoch"] <= best["epoch"])
        row["stopped_over_budget"] = history[-1].get("stopped") == "time"
        if budget is not None:
            row["probe_epoch_seconds"] = epoch_seconds(model, params, split)
            row["probe_previous_epoch_seconds"] = epoch_seconds(model, PREVIOUS_DEFAULTS[model], split,
                                                                previous_kernels=True)
            row["cost"] = row["best_epoch"] * row["probe_epoch_seconds"]
            row["budget"] = budget["best_epoch"] * row["probe_previous_epoch_seconds"]
            row["eligible"] = not row["stopped_over_budget"] and row["cost"] <= row["budget"]
        else:
            row["eligible"] = True
    else:
        row["eligible"] = True
    return row


def _previous_default_time(model: str, profile: str, split) -> dict:
    """The previous default trained with the previous kernels (cached): its time to the best epoch."""
    from .models.kernels import reference

    with reference():
        r = run(_config(model, PREVIOUS_DEFAULTS[model], profile), split, progress=False)
    return {"seconds_to_best": r.seconds_to_best, "best_epoch": r.best_epoch,
            "train_seconds": r.train_seconds, "cached": r.cached}


def winner(record: dict) -> dict | None:
    """The eligible trial with the highest validation NDCG@10 (the first one on a tie); None
    while no trial is eligible."""
    eligible = [t for t in record["trials"] if t["eligible"]]
    return max(eligible, key=lambda t: t["valid_ndcg10"]) if eligible else None


def tune(model: str, n_trials: int = N_TRIALS, seed: int = 0, profile: str = "full",
         out: Path | None = None, progress: bool = True) -> dict:
    """Run (or resume) the search of ``model`` and write its record; return the record."""
    from .progress import progress_bar

    out = Path(out) if out is not None else RECORD_DIR / f"{model}.json"
    split = load_split("ml-100k")
    trials = sample_trials(model, n_trials, seed)
    neural = issubclass(CONFIGS[model], NeuralConfig)
    record = read_record(model, out.parent) if out.is_file() else None
    if record is not None and (record["n_trials"], record["seed"], record["profile"]) != (n_trials, seed, profile):
        record = None  # another search: start afresh
    if record is None:
        record = {"model": model, "n_trials": n_trials, "seed": seed, "profile": profile,
                  "dataset": "ml-100k", "metric": "NDCG@10 on the validation items (full ranking, seen masked)",
                  "space": [p.describe() for p in SPACES[model]],
                  "previous_default": PREVIOUS_DEFAULTS[model], "budget": None,
                  "machine": cpu_description(), "torch_threads": torch.get_num_threads(),
                  "recnotes_version": __version__, "trials": []}
    if neural and record["budget"] is None:
        reference_run = _previous_default_time(model, profile, split)
        record["budget"] = {"seconds": reference_run["seconds_to_best"],
                            "rule": "best epoch x seconds per epoch, both probed beside each trial, "
                                    "within the previous default's (previous kernels)",
                            **reference_run}
    budget = record["budget"] if neural else None
    done = len(record["trials"])
    for i in progress_bar(range(done, n_trials), desc=f"tune {model}", disable=not progress,
                          initial=done, total=n_trials):
        row = _trial(model, trials[i], profile, split, budget)
        record["trials"].append({"trial": i, **row})
        best = winner(record)
        record["winner"] = None if best is None else best["trial"]
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out, lambda tmp: tmp.write_text(json.dumps(record, indent=1) + "\n"))
    return record


def read_record(model: str, folder: Path | None = None) -> dict:
    """The committed tuning record of ``model``."""
    path = (Path(folder) if folder is not None else RECORD_DIR) / f"{model}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no tuning record {path}: run python -m recnotes.tune {model}")
    return json.loads(path.read_text())


def defaults_match(model: str, folder: Path | None = None) -> dict[str, tuple[Any, Any]]:
    """``{parameter: (default, winner's value)}`` for every parameter where the ``Config``
    default differs from the record's winner (empty when they agree)."""
    record = read_record(model, folder)
    best = next(t for t in record["trials"] if t["trial"] == record["winner"])
    defaults = {f.name: f.default for f in fields(CONFIGS[model])}
    wanted = dict(best["params"])
    if "max_epochs" in wanted:
        wanted["decay_epochs"] = wanted["max_epochs"]
    return {k: (defaults.get(k), v) for k, v in wanted.items() if defaults.get(k) != v}


def _summary(record: dict) -> str:
    lines = [f"{record['model']}: {len(record['trials'])}/{record['n_trials']} trials, seed {record['seed']}"]
    if record.get("budget"):
        lines.append(f"  previous default: best epoch {record['budget']['best_epoch']}, "
                     f"{record['budget']['seconds']:.0f} s to it when trained")
    for t in sorted(record["trials"], key=lambda t: -t["valid_ndcg10"]):
        mark = "*" if t["trial"] == record.get("winner") else (" " if t["eligible"] else "x")
        extra = (f" best epoch {t['best_epoch']}/{t['epochs']}, cost {t['cost']:.0f} s of {t['budget']:.0f}"
                 if "cost" in t else "")
        lines.append(f" {mark} trial {t['trial']:2d}: valid NDCG@10 {t['valid_ndcg10']:.4f}, "
                     f"{t['train_seconds']:.0f} s{extra}  {t['params']}")
    lines.append("  (* winner, x over the time budget)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recnotes.tune",
                                     description="Seeded random search on the validation split.")
    parser.add_argument("model", choices=sorted(SPACES))
    parser.add_argument("--trials", type=int, default=N_TRIALS, help=f"default {N_TRIALS}, the same for every model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", default="full")
    parser.add_argument("--out", type=Path, default=None, help="record file (default book/tuning/MODEL.json)")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads (default 1, as the book)")
    parser.add_argument("--check", action="store_true",
                        help="only check that the Config defaults equal the committed record's winner")
    args = parser.parse_args(argv)
    if args.check:
        diff = defaults_match(args.model)
        for k, (have, want) in diff.items():
            print(f"{args.model}.{k}: default {have!r}, record's winner {want!r}")
        print(f"{args.model}: defaults {'differ from' if diff else 'equal'} the tuning record's winner")
        return 1 if diff else 0
    torch.set_num_threads(args.threads)
    record = tune(args.model, args.trials, args.seed, args.profile, args.out)
    print(_summary(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
