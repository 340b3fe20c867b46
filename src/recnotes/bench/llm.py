"""``python -m recnotes.bench llm``: the zero-shot LLM ranker on protocol P2, timed.

1. **Shared prefix vs naive.**  On the first ``--naive-users`` sampled users, the
   same prompts and candidates are scored twice: once with the shared-prefix KV
   cache (one batched pass per user) and once naively (one full prompt per
   candidate).  Prints both times, the speed-up and the largest absolute
   difference between the two sets of scores.
2. **P2 run.**  ``LLMRanker[likelihood,<template>]`` ranks the 20 candidates of
   ``--users`` sampled users (default 200; leave-one-out split of ML-100K, test
   stage, seed 0); prints the wall time, seconds and tokens per user, and the
   P2 metrics with bootstrap 95% intervals.  ``--listwise`` adds the list-wise
   ranker on the same users.

Device: CUDA (bf16) when available, else the CPU in float32; ``--device`` overrides.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from ..data import load_movielens
from ..data.splits import leave_one_out
from ..device import describe_device, get_device
from ..evaluate import evaluate_candidates, sample_candidates
from ..models.llm import HFBackend, LLMRanker, item_titles

__all__ = ["main", "compare_paths", "random_expectation"]


def compare_paths(ranker: LLMRanker, histories: list, candidates: np.ndarray) -> dict[str, float]:
    """Score the same users with the shared-prefix and the naive path; time both."""
    backend = ranker.backend
    diffs, times = [], {"shared": 0.0, "naive": 0.0}
    for hist, cands in zip(histories, candidates):
        hist = [int(i) for i in hist if i != 0]
        order = ranker.prompt_order(hist, cands)
        messages = ranker.messages(hist, cands, order)
        shown = [ranker.titles[int(cands[k])] for k in order]
        out = {}
        for path in ("shared", "naive"):
            start = time.perf_counter()
            out[path] = backend.score_continuations(messages, shown, shared_prefix=path == "shared")
            times[path] += time.perf_counter() - start
        diffs.append(np.abs(out["shared"] - out["naive"]).max())
    n = len(histories)
    return {"users": n, "shared_seconds_per_user": times["shared"] / n,
            "naive_seconds_per_user": times["naive"] / n,
            "speedup": times["naive"] / times["shared"], "max_abs_diff": float(max(diffs))}


def random_expectation(n_candidates: int = 20) -> dict[str, float]:
    """P2 metrics of a ranker that places the true item uniformly at random (exact)."""
    ranks = np.arange(n_candidates)

    def ndcg(k: int) -> float:
        return float(np.mean(np.where(ranks < k, 1 / np.log2(ranks + 2), 0.0)))

    return {"HR@1": 1 / n_candidates, "HR@5": 5 / n_candidates,
            "NDCG@1": ndcg(1), "NDCG@5": ndcg(5), "NDCG@10": ndcg(10)}


def _run(ranker: LLMRanker, split, cands) -> dict:
    ranker.reset_stats()
    result = evaluate_candidates(ranker, split, cands, stage="test", ks=(1, 5, 10))
    table = result.summary(n_bootstrap=1000, seed=0)
    metrics = {f"{r.metric}@{r.k}": [round(r.value, 4), round(r.ci_low, 4), round(r.ci_high, 4)]
               for r in table.itertuples() if (r.metric, r.k) in
               {("NDCG", 1), ("NDCG", 5), ("NDCG", 10), ("HR", 1), ("HR", 5)}}
    st = ranker.stats
    return {"model": ranker.name, "users": result.n_users, "wall_seconds": result.seconds,
            "seconds_per_user": st.seconds_per_user, "tokens_per_user": st.tokens_per_user,
            "metrics": metrics, "omitted": st.omitted, "invented": st.invented,
            "unparsed": st.unparsed}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m recnotes.bench llm", description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, default=200, help="P2 users (default 200)")
    p.add_argument("--naive-users", type=int, default=5,
                   help="users for the shared-prefix vs naive comparison (default 5)")
    p.add_argument("--template", default="sequential", choices=["sequential", "recency", "in_context"])
    p.add_argument("--max-history", type=int, default=10)
    p.add_argument("--listwise", action="store_true", help="also run the list-wise ranker")
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    split = leave_one_out(load_movielens("ml-100k"))
    cands = sample_candidates(split, n_users=args.users, n_negatives=19, seed=0, stage="test")
    device = get_device(args.device)
    start = time.perf_counter()
    backend = HFBackend.from_pretrained(device=device)
    load_s = time.perf_counter() - start
    titles = item_titles(split.data)
    print(f"device: {describe_device(device)}, {backend!r}, loaded in {load_s:.1f} s, "
          f"torch threads {torch.get_num_threads()}")
    out: dict = {"device": describe_device(device), "model": backend.name, "load_seconds": load_s,
                 "users": int(len(cands.users)), "template": args.template,
                 "max_history": args.max_history}

    ranker = LLMRanker(backend, titles, "likelihood", args.template, args.max_history, progress=True)
    hist = split.histories("test")
    k = min(args.naive_users, len(cands.users))
    if k > 0:
        cmp = compare_paths(ranker, [hist[u] for u in cands.users[:k]], cands.items[:k])
        out["shared_vs_naive"] = cmp
        print(f"shared prefix vs naive on the same {k} users: "
              f"{cmp['shared_seconds_per_user']:.2f} s vs {cmp['naive_seconds_per_user']:.2f} s per user, "
              f"speed-up {cmp['speedup']:.1f}x, max |diff| {cmp['max_abs_diff']:.2e}")

    chance = random_expectation(cands.items.shape[1])
    out["random_expectation"] = chance
    print("random ranker (exact expectation): " + ", ".join(f"{k} {v:.4f}" for k, v in chance.items()))
    runs = [ranker]
    if args.listwise:
        runs.append(LLMRanker(backend, titles, "listwise", args.template, args.max_history, progress=True))
    out["runs"] = []
    for r in runs:
        res = _run(r, split, cands)
        out["runs"].append(res)
        print(f"{res['model']}: {res['users']} users in {res['wall_seconds']:.1f} s "
              f"({res['seconds_per_user']:.2f} s/user, {res['tokens_per_user']:.0f} tokens/user)")
        for name, (v, lo, hi) in res["metrics"].items():
            print(f"  {name:8s} {v:.4f}  [{lo:.4f}, {hi:.4f}]")
        if r.method == "listwise":
            print(f"  omitted {res['omitted']}, invented {res['invented']}, unparsed answers {res['unparsed']}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
