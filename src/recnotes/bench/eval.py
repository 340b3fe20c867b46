"""``python -m recnotes.bench eval``: how fast protocol P1 runs, with random scores.

Two cases: all MovieLens-100K users (943 x 1,682 items), and a synthetic
catalogue (by default 100,000 items x 50,000 users, 20 interactions each)
that only fits because evaluation is batched.  The time includes drawing the
random scores (``torch.rand``), masking, ranking and the top-K lists.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from ..data import Interactions, leave_one_out, load_movielens
from ..data.splits import Split
from ..evaluate import evaluate_full, measure

__all__ = ["RandomScores", "synthetic_split", "run", "main"]


class RandomScores:
    """Uniform random scores over the catalogue (the ``Random`` baseline)."""

    name = "Random"

    def __init__(self, n_items: int, seed: int = 0, device: str | torch.device = "cpu") -> None:
        self.n_items, self.device = n_items, torch.device(device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    def score(self, histories: list[np.ndarray]) -> torch.Tensor:
        return torch.rand(len(histories), self.n_items + 1, generator=self.generator, device=self.device)


def synthetic_split(n_users: int, n_items: int, per_user: int = 20, seed: int = 0) -> Split:
    """A leave-one-out split of random interactions in which every item occurs."""
    rng = np.random.default_rng(seed)
    n = n_users * per_user
    items = rng.integers(1, n_items + 1, n)
    items[:n_items] = np.arange(1, n_items + 1)  # every item at least once
    frame = pd.DataFrame({"user": np.repeat(np.arange(n_users), per_user), "item": items,
                          "timestamp": np.tile(np.arange(per_user), n_users)})
    return leave_one_out(Interactions.from_frame(frame, name="synthetic"))


def run(split: Split, batch_size: int, repeats: int, device: str) -> dict:
    """Time ``repeats`` P1 evaluations with random scores; one row of the table."""
    times, peak = [], 0.0
    for r in range(repeats):
        model = RandomScores(split.n_items, seed=r, device=device)
        with measure(device) as m:
            res = evaluate_full(model, split, batch_size=batch_size, device=device)
        times.append(res.seconds)
        peak = max(peak, m.peak_memory_mb)
    return {"case": split.data.name, "users": split.n_users, "items": split.n_items,
            "batch": batch_size, "repeats": repeats, "best_s": min(times),
            "median_s": float(np.median(times)), "users_per_s": split.n_users / float(np.median(times)),
            "peak_memory_mb": peak, "HR@10": float(res.per_user["HR@10"].mean())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recnotes.bench eval", description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50_000, help="synthetic users")
    parser.add_argument("--items", type=int, default=100_000, help="synthetic items")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5, help="repeats of the ML-100K case")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-synthetic", action="store_true")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    rows = []
    ml = leave_one_out(load_movielens("ml-100k"))
    evaluate_full(RandomScores(ml.n_items, device=args.device), ml, device=args.device)  # warm-up
    rows.append(run(ml, args.batch_size, args.repeats, args.device))
    if not args.skip_synthetic:
        start = time.perf_counter()
        syn = synthetic_split(args.users, args.items)
        print(f"synthetic split built in {time.perf_counter() - start:.1f} s")
        rows.append(run(syn, args.batch_size, 1, args.device))
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda x: f"{x:,.3f}"))
    return 0
