"""``python -m recnotes.bench models``: training throughput old and new, then every model on
MovieLens-100K, protocol P1.

First, GPTRec's and LSTM's training throughput: the previous defaults on the previous
training path beside the current defaults on the current one (and the previous defaults
on the current path), each in fresh processes (:mod:`recnotes.bench.throughput`), with
the validation and test NDCG@10 of the previous and the current default (seed 0).
Then:

Leave-one-out split, full ranking of the test item with seen items masked.
Per model: NDCG@10, HR@10, MRR@10 with bootstrap 95% intervals (neural models:
per-user metrics averaged over the profile's seeds first), coverage@10,
novelty@10, training wall time (and up to the best validation epoch),
evaluation users/s, single-request latency p50, parameters and peak memory;
then paired tests of the best model against every other one.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..device import describe_device, get_device
from ..evaluate import EfficiencyMeter, evaluate_full, paired_test
from ..evaluate.efficiency import request
from ..evaluate.uncertainty import bootstrap_ci
from ..experiments import CONFIGS, NeuralConfig, load_split, run
from ..profiles import get_profile

__all__ = ["main", "benchmark"]

CLASSIC = ("Random", "Popularity", "ItemKNN", "EASE")


def _one(name: str, seed: int, profile, split, users, device, progress: bool) -> dict:
    cfg = CONFIGS[name](seed=seed, profile=profile.name)
    meter = EfficiencyMeter(device if isinstance(cfg, NeuralConfig) else None)
    with meter.train():
        r = run(cfg, split, progress=progress, device=device)
    result = evaluate_full(r.model, split, stage="test", ks=(1, 5, 10, 20), users=users)
    # throughput: the evaluator's own timing of scoring + ranking, best of two warm runs
    again = [evaluate_full(r.model, split, stage="test", ks=(10,), users=users) for _ in range(2)]
    meter.latency(request(r.model, split.histories("test")[0]), repeats=30)
    return {"model": name, "seed": seed, "result": result, "run": r,
            "eff": {**meter.as_dict(), "eval_users_per_second": max(a.users_per_second for a in again),
                    "eval_seconds": min(a.seconds for a in again)},
            "params": meter.params(r.model)}


def benchmark(profile_name: str = "full", models: list[str] | None = None,
              device: str | None = None, progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the benchmark; return the model table and the paired tests."""
    profile = get_profile(profile_name)
    dev = get_device(device)
    split = load_split("ml-100k")
    users = None if profile.max_users is None else np.arange(min(profile.max_users, split.n_users))
    rows, per_user = [], {}
    for name in models or list(CONFIGS):
        seeds = profile.seeds if issubclass(CONFIGS[name], NeuralConfig) else (0,)
        outs = [_one(name, s, profile, split, users, dev, progress) for s in seeds]
        frame = sum(o["result"].per_user for o in outs) / len(outs)
        per_user[name] = frame
        row: dict = {"model": name, "seeds": len(seeds)}
        for metric in ("NDCG@10", "HR@10", "MRR@10"):
            mean, low, high = bootstrap_ci(frame[metric].to_numpy(), profile.n_bootstrap, seed=0)
            row[metric] = float(mean)
            row[f"{metric} CI"] = f"[{float(low):.4f}, {float(high):.4f}]"
        ba = pd.concat([o["result"].beyond_accuracy((10,)) for o in outs])
        for col, label in (("coverage", "coverage@10"), ("novelty", "novelty@10")):
            row[label] = _beyond(ba, col)
        runs = [o["run"] for o in outs]
        row["train s"] = float(np.mean([r.train_seconds for r in runs]))
        best = [r.seconds_to_best for r in runs if r.seconds_to_best is not None]
        row["s to best epoch"] = float(np.mean(best)) if best else np.nan
        row["best epoch"] = float(np.mean([r.best_epoch for r in runs])) if best else np.nan
        row["s/epoch"] = float(np.mean([np.mean([h["seconds"] for h in r.history]) for r in runs])) if best else np.nan
        row["cached"] = all(r.cached for r in runs)
        row["eval users/s"] = float(np.mean([o["eff"]["eval_users_per_second"] for o in outs]))
        row["eval s (all users)"] = float(np.mean([o["eff"]["eval_seconds"] for o in outs]))
        row["latency p50 ms"] = float(np.mean([o["eff"]["latency_p50_ms"] for o in outs]))
        row["params"] = outs[0]["params"]
        row["peak MB"] = float(max(o["eff"].get("peak_memory_mb", np.nan) for o in outs))
        rows.append(row)
        print(_fmt(pd.DataFrame([row])), flush=True)
    table = pd.DataFrame(rows)
    best_name = table.sort_values("NDCG@10").iloc[-1]["model"]
    tests = []
    for name in per_user:
        if name == best_name:
            continue
        for metric in ("NDCG@10", "HR@10"):
            t = paired_test(per_user[best_name][metric], per_user[name][metric], seed=0)
            tests.append({"model": best_name, "vs": name, "metric": metric, **t})
    return table, pd.DataFrame(tests)


def throughput_table(models=("GPTRec", "LSTM"), epochs: int = 3, repeats: int = 2) -> pd.DataFrame:
    """Throughput of the training paths side by side, with each default's validation and test
    NDCG@10 (seed 0; the previous default trained on the previous path, as before the search)."""
    import contextlib

    from ..models.kernels import reference
    from .throughput import _config, measure

    split = load_split("ml-100k")
    rows = measure(models, epochs, repeats)
    for row in rows:
        if row["variant"] == "previous-config":
            continue
        with reference() if row["variant"] == "previous" else contextlib.nullcontext():
            r = run(_config(row["model"], row["variant"]), split, progress=False)
            row["valid NDCG@10"] = float(evaluate_full(r.model, split, stage="valid", ks=(10,)).per_user["NDCG@10"].mean())
            row["test NDCG@10"] = float(evaluate_full(r.model, split, stage="test", ks=(10,)).per_user["NDCG@10"].mean())
            row["s to best epoch"] = r.seconds_to_best
    return pd.DataFrame(rows)


def _beyond(frame: pd.DataFrame, name: str) -> float:
    """Mean over seeds of one beyond-accuracy metric (``frame`` from ``beyond_accuracy``)."""
    return float(frame.loc[frame["metric"] == name, "value"].mean())


def _fmt(table: pd.DataFrame) -> str:
    return table.to_string(index=False, float_format=lambda v: f"{v:.4f}" if abs(v) < 10 else f"{v:,.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recnotes.bench models", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default=None, help="full | ci | smoke (default: $RECNOTES_PROFILE or full)")
    parser.add_argument("--models", nargs="*", default=None, choices=list(CONFIGS))
    parser.add_argument("--device", default=None, help="default: CUDA, then MPS, then CPU")
    parser.add_argument("--threads", type=int, default=1,
                        help="PyTorch CPU threads (default 1: on a small shared CPU, more threads "
                             "made training many times slower)")
    parser.add_argument("--json", type=Path, default=None, help="also write the tables as JSON here")
    parser.add_argument("--no-throughput", action="store_true", help="skip the old-vs-new training throughput")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per throughput run (default 3)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    print(f"recnotes bench models: profile {profile.name}, device {describe_device(get_device(args.device))}, "
          f"torch threads {torch.get_num_threads()}")
    speed = None
    if not args.no_throughput:
        from ..device import cpu_description

        print(f"\ntraining throughput, old and new ({cpu_description()}; 1 thread; fresh processes):")
        speed = throughput_table(epochs=args.epochs)
        print(_fmt(speed))
    table, tests = benchmark(profile.name, args.models, args.device, not args.no_progress)
    wall = time.perf_counter() - start
    print("\n" + _fmt(table))
    if len(tests):
        print("\npaired tests (sign-flip permutation, per-user, test split):")
        print(_fmt(tests))
    print(f"\nwall time: {wall:.1f} s")
    if args.json is not None:
        args.json.write_text(json.dumps({"profile": profile.name, "wall_seconds": wall,
                                         "throughput": None if speed is None else speed.to_dict("records"),
                                         "models": table.to_dict("records"),
                                         "paired_tests": tests.to_dict("records")}, indent=1, default=float))
    return 0
