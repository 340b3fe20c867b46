"""``python -m recnotes.bench llm``: the LLM ranker's likelihood scorers side by side, and P2.

1. **Scorers on the same inputs.**  The same sampled P2 users (leave-one-out
   split of ML-100K, test stage, seed 0), the same prompts (``--template``,
   default ``completion``) and the same 20 candidates are scored by every path
   of :mod:`recnotes.models.llm.likelihood`:

   * ``naive``: one full prompt + title per candidate (``--naive-users`` users);
   * ``shared``: the prompt's KV cache copied over a right-padded batch of titles;
   * ``packed``: prompt and titles in one row, one user per pass;
   * ``batched``: the packed rows of ``--batch-users`` users in one pass.

   For each dtype (float32, and bf16 where the processor multiplies bf16
   natively or ``--dtypes`` asks for it) it prints seconds per user, users per
   second, the speed-up over ``shared``, and the largest difference from the
   naive scores on the users both scored.
2. **Fine-tuning** (``--train-targets N``, default 0 = skipped): chapter 6's LoRA recipe on
   N targets, its targets per second and its achieved FLOP rate (PyTorch's FLOP counter on
   its steps, divided by their time) beside the measured rate of a matrix product in the
   same dtype on the same device.
3. **P2 run** (``--users N``, default 0 = skipped): ``LLMRanker`` ranks the 20
   candidates of N users with the batched scorer; prints the cost and the P2
   metrics with bootstrap 95% intervals.

Every model load, then the timed passes, run in this one process, one after
the other; ``--threads`` sets PyTorch's threads (default 1, as the book).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import numpy as np
import torch

from ..device import cpu_description, describe_device, get_device, native_cpu_bf16
from ..evaluate import evaluate_candidates, sample_candidates
from ..experiments import load_split
from ..models.llm import HFBackend, LLMRanker, item_titles
from ..models.llm.prompts import TEMPLATES

__all__ = ["main", "compare_scorers", "random_expectation", "matmul_rate", "training_rate"]


def compare_scorers(ranker: LLMRanker, histories: list, candidates: np.ndarray, naive_users: int = 2,
                    batch_users: int = 4, repeats: int = 1) -> dict:
    """Time every scorer on the same users' prompts and candidates (best of ``repeats``)."""
    backend = ranker.backend
    rows = []
    for hist, cands in zip(histories, candidates):
        hist = [int(i) for i in hist if i != 0]
        order = ranker.prompt_order(hist, cands)
        rows.append((ranker.prompt(hist, cands, order), ranker.continuations(cands, order)))
    prompts, conts = [r[0] for r in rows], [r[1] for r in rows]

    def timed(fn):
        best, out = float("inf"), None
        for _ in range(repeats):
            start = time.perf_counter()
            out = fn()
            best = min(best, time.perf_counter() - start)
        return out, best

    end = ranker.end_token
    k = min(naive_users, len(rows))
    results = {}
    naive, t = timed(lambda: backend.score_batch(prompts[:k], conts[:k], "naive", end))
    results["naive"] = {"users": k, "seconds_per_user": t / k, "scores": naive}
    for name, scorer, step in (("shared", "shared", 1), ("packed", "packed", 1),
                               ("batched", "packed", batch_users)):
        def run():
            out = []
            for i in range(0, len(rows), step):
                out += backend.score_batch(prompts[i:i + step], conts[i:i + step], scorer, end)
            return out
        scores, t = timed(run)
        results[name] = {"users": len(rows), "seconds_per_user": t / len(rows), "scores": scores}
    shared = results["shared"]["seconds_per_user"]
    for name, r in results.items():
        r["users_per_second"] = 1.0 / r["seconds_per_user"]
        r["speedup_over_shared"] = shared / r["seconds_per_user"]
        r["max_abs_diff_vs_naive"] = float(max(np.abs(a - b).max() for a, b in zip(r["scores"][:k], naive)))
        del r["scores"]
    results["batch_users"] = batch_users
    return results


def matmul_rate(dtype: torch.dtype, device: torch.device, size: int = 2048, repeats: int = 5) -> float:
    """The core's measured matrix-multiply rate in FLOP/s: the fastest of ``repeats`` products
    of two ``size`` x ``size`` matrices in ``dtype`` (2 size^3 FLOPs each)."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    best = float("inf")
    for _ in range(repeats + 1):  # the first warms up
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best


@contextlib.contextmanager
def _plain_head():
    from ..models.llm import likelihood

    before, likelihood.HEAD_COLUMNS = likelihood.HEAD_COLUMNS, 0
    try:
        yield
    finally:
        likelihood.HEAD_COLUMNS = before


def training_rate(backend: HFBackend, split, titles, targets: int = 400, steps_counted: int = 2) -> dict:
    """Chapter 6's LoRA fine-tuning (its default settings) on ``targets`` targets: targets per
    second, and the FLOPs of its training steps as PyTorch's FLOP counter counts them (matrix
    products, attention, forward and backward) divided by their time."""
    from torch.utils.flop_counter import FlopCounterMode

    from ..llm_experiments import LoRAConfig
    from ..models.llm.finetune import FineTunedLLMRanker, _user_windows, take_windows

    s = LoRAConfig().settings()
    settings = type(s)(**{**s.__dict__, "n_targets": targets, "keep": (targets,)})
    ranker = FineTunedLLMRanker(backend, titles, settings)
    start = time.perf_counter()
    ranker.fit(split, progress=False)
    seconds = time.perf_counter() - start
    # the FLOPs of the same first steps, counted (a counted step runs slower: not timed)
    windows = take_windows([w for _, w in _user_windows(split, settings.window, settings.seed)], targets)
    counter = FlopCounterMode(display=False)
    counted_targets = 0
    # the model's arithmetic, as the plain output layer does it: the blocked output layer's
    # second pass over the vocabulary in the backward pass (likelihood.head_logprobs) is not counted
    with counter, _plain_head():
        for i in range(min(steps_counted, -(-len(windows) // settings.batch_size))):
            chunk = windows[i * settings.batch_size:(i + 1) * settings.batch_size]
            loss = ranker._loss([ranker._tokens(w) for w in chunk])
            loss.backward()
            counted_targets += sum(len(w) for w in chunk)
    flops_per_target = counter.get_total_flops() / counted_targets
    rate = ranker.targets_seen / seconds
    return {"targets": ranker.targets_seen, "seconds": seconds, "targets_per_second": rate,
            "flops_per_target": flops_per_target, "achieved_flops": rate * flops_per_target}


def random_expectation(n_candidates: int = 20) -> dict[str, float]:
    """P2 metrics of a ranker that places the true item uniformly at random (exact)."""
    ranks = np.arange(n_candidates)

    def ndcg(k: int) -> float:
        return float(np.mean(np.where(ranks < k, 1 / np.log2(ranks + 2), 0.0)))

    return {"HR@1": 1 / n_candidates, "HR@5": 5 / n_candidates,
            "NDCG@1": ndcg(1), "NDCG@5": ndcg(5), "NDCG@10": ndcg(10)}


def _p2(ranker: LLMRanker, split, cands) -> dict:
    ranker.reset_stats()
    result = evaluate_candidates(ranker, split, cands, stage="test", ks=(1, 5, 10))
    table = result.summary(n_bootstrap=1000, seed=0)
    metrics = {f"{r.metric}@{r.k}": [round(r.value, 4), round(r.ci_low, 4), round(r.ci_high, 4)]
               for r in table.itertuples() if (r.metric, r.k) in
               {("NDCG", 1), ("NDCG", 5), ("NDCG", 10), ("HR", 1), ("HR", 5)}}
    st = ranker.stats
    return {"model": ranker.name, "users": result.n_users, "wall_seconds": result.seconds,
            "seconds_per_user": st.seconds_per_user, "tokens_per_user": st.tokens_per_user,
            "metrics": metrics}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m recnotes.bench llm", description=__doc__.split("\n")[0])
    p.add_argument("--speed-users", type=int, default=16, help="users for the scorer comparison (default 16)")
    p.add_argument("--naive-users", type=int, default=2, help="of them, scored naively too, the reference of the diffs (default 2, at least 1)")
    p.add_argument("--batch-users", type=int, default=4, help="users per packed pass (default 4)")
    p.add_argument("--repeats", type=int, default=2, help="time each scorer this many times, keep the best")
    p.add_argument("--template", default="completion", choices=list(TEMPLATES))
    p.add_argument("--dtypes", nargs="*", default=None,
                   help="float32 and/or bfloat16 (default: float32, plus bfloat16 on CUDA or a CPU with native bf16)")
    p.add_argument("--users", type=int, default=0, help="also rank this many P2 users (default 0: skip)")
    p.add_argument("--max-history", type=int, default=10)
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.add_argument("--train-targets", type=int, default=0,
                   help="also time chapter 6's LoRA fine-tuning on this many targets and its FLOP rate beside "
                        "the core's matrix-multiply rate (default 0: skip)")
    args = p.parse_args(argv)
    if not 1 <= args.naive_users <= args.speed_users:
        p.error(f"--naive-users must be between 1 and --speed-users ({args.speed_users}): the naive scorer is "
                f"the reference the others are compared with")
    torch.set_num_threads(args.threads)
    device = get_device(args.device)
    dtypes = args.dtypes or (["float32", "bfloat16"] if device.type == "cuda" or native_cpu_bf16()
                             else ["float32"])
    split = load_split("ml-100k")
    titles = item_titles(split.data)
    n = max(args.speed_users, args.users)
    cands = sample_candidates(split, n_users=n, n_negatives=19, seed=0, stage="test")
    hist = split.histories("test")
    print(f"recnotes bench llm: {describe_device(device)} ({cpu_description()}), torch threads "
          f"{torch.get_num_threads()}, template {args.template}, {args.speed_users} users x "
          f"{cands.items.shape[1]} candidates")
    out: dict = {"device": describe_device(device), "cpu": cpu_description(), "threads": torch.get_num_threads(),
                 "template": args.template, "speed_users": args.speed_users, "dtypes": {}}
    for dtype in dtypes:
        start = time.perf_counter()
        backend = HFBackend.from_pretrained(device=device, dtype=getattr(torch, dtype))
        ranker = LLMRanker(backend, titles, "likelihood", args.template, args.max_history,
                           batch_users=args.batch_users)
        users = cands.users[:args.speed_users]
        cmp = compare_scorers(ranker, [hist[u] for u in users], cands.items[:args.speed_users],
                              args.naive_users, args.batch_users, args.repeats)
        cmp["load_seconds"] = time.perf_counter() - start
        out["dtypes"][dtype] = cmp
        print(f"\n{dtype}:  scorer   s/user  users/s  x shared  max |diff| vs naive")
        for name in ("naive", "shared", "packed", "batched"):
            r = cmp[name]
            label = f"batched ({args.batch_users}/pass)" if name == "batched" else name
            print(f"  {label:18s} {r['seconds_per_user']:6.2f} {r['users_per_second']:8.2f} "
                  f"{r['speedup_over_shared']:8.2f}  {r['max_abs_diff_vs_naive']:.1e}"
                  + (f"   ({r['users']} users)" if name == "naive" else ""))
        if args.users:
            res = _p2(ranker, split, type(cands)(cands.users[:args.users], cands.items[:args.users],
                                                  cands.target_pos[:args.users], cands.stage, cands.seed))
            out.setdefault("p2", {})[dtype] = res
            print(f"  P2, {res['users']} users: {res['seconds_per_user']:.2f} s/user, "
                  f"{res['tokens_per_user']:.0f} tokens/user")
            for name, (v, lo, hi) in res["metrics"].items():
                print(f"    {name:8s} {v:.4f}  [{lo:.4f}, {hi:.4f}]")
        if args.train_targets:
            peak = matmul_rate(getattr(torch, dtype), device)
            train = training_rate(backend, split, titles, args.train_targets)
            train["matmul_flops"] = peak
            out.setdefault("training", {})[dtype] = train
            print(f"  LoRA fine-tuning, {train['targets']} targets: {train['targets_per_second']:.1f} targets/s, "
                  f"{train['flops_per_target'] / 1e9:.2f} GFLOP/target, {train['achieved_flops'] / 1e12:.3f} TFLOP/s "
                  f"achieved against {peak / 1e12:.3f} TFLOP/s for a {dtype} matrix product on this device "
                  f"({100 * train['achieved_flops'] / peak:.0f}%)")
    chance = random_expectation(cands.items.shape[1])
    out["random_expectation"] = chance
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
