"""Training throughput of GPTRec and LSTM, old and new side by side, on this machine.

Three variants per model, each trained for a few epochs in a fresh process (the
allocator setting of the new path is process-wide, and the old path must run
without it), with one PyTorch thread, interleaved and repeated so that whatever
else the machine does weighs on all of them:

* ``previous``: the defaults before the tuning search, with the previous training
  path (plain PyTorch dropout and cross-entropy, per-parameter AdamW, the LSTM on
  packed sequences: :func:`recnotes.models.kernels.reference`);
* ``previous-config``: the same configuration with the new training path;
* ``new``: the current defaults with the new training path.

Throughput is training targets (next items predicted) per second of an epoch,
validation included; an epoch's seconds are the median over the epochs after the
first (which pays for warming up) and over the repeats.

    python -m recnotes.bench.throughput [--epochs 3] [--repeats 2] [--models GPTRec LSTM]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from typing import Sequence

__all__ = ["VARIANTS", "VARIANT_LABELS", "measure", "worker", "main"]

VARIANTS = ("previous", "previous-config", "new")
#: what each variant is, in words (for tables and figures)
VARIANT_LABELS = {"previous": "untuned defaults, plain PyTorch", "previous-config": "untuned defaults, fused trainer",
                  "new": "tuned defaults, fused trainer"}


def _config(model: str, variant: str):
    from ..experiments import CONFIGS
    from ..tune import PREVIOUS_DEFAULTS

    if variant == "new":
        return CONFIGS[model](seed=0)
    params = dict(PREVIOUS_DEFAULTS[model])
    params["decay_epochs"] = params["max_epochs"]
    return CONFIGS[model](seed=0, **params)


def worker(model: str, variant: str, epochs: int) -> dict:
    """Train ``epochs`` epochs of one variant in this process; its seconds per epoch and targets."""
    import contextlib
    from dataclasses import replace

    import torch

    from ..experiments import load_split
    from ..models.kernels import reference
    from ..models.training import seed_everything, train, training_windows

    torch.set_num_threads(1)
    split = load_split("ml-100k")
    config = _config(model, variant)
    net = config.build()
    seed_everything(0)
    net.build(split.n_items)
    cfg = replace(config.train_config(), max_epochs=epochs, patience=epochs + 1)
    targets = int((training_windows(split.train, net.max_len, cfg.window_stride)[1] != 0).sum())
    with reference() if variant == "previous" else contextlib.nullcontext():
        history = train(net, split, cfg, progress=False)
    return {"model": model, "variant": variant, "targets": targets,
            "epoch_seconds": [h["seconds"] for h in history]}


def measure(models: Sequence[str] = ("GPTRec", "LSTM"), epochs: int = 3, repeats: int = 2,
            variants: Sequence[str] = VARIANTS) -> list[dict]:
    """Run every (model, variant) ``repeats`` times in fresh processes, interleaved; one row each
    with seconds per epoch, targets per second and the speed-up over ``previous``."""
    runs: dict[tuple[str, str], list[dict]] = {}
    for _ in range(repeats):
        for model in models:
            for variant in variants:
                cmd = [sys.executable, "-m", "recnotes.bench.throughput", "--worker", model, variant,
                       "--epochs", str(epochs)]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True)
                runs.setdefault((model, variant), []).append(json.loads(out.stdout.strip().splitlines()[-1]))
    rows = []
    for (model, variant), results in runs.items():
        seconds = statistics.median(s for r in results for s in r["epoch_seconds"][1:] or r["epoch_seconds"])
        rows.append({"model": model, "variant": variant, "seconds_per_epoch": seconds,
                     "targets_per_second": results[0]["targets"] / seconds, "targets": results[0]["targets"]})
    for row in rows:
        base = next(r for r in rows if r["model"] == row["model"] and r["variant"] == variants[0])
        row["speedup"] = row["targets_per_second"] / base["targets_per_second"]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recnotes.bench.throughput", description=__doc__.split("\n")[0])
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "VARIANT"), help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--models", nargs="*", default=["GPTRec", "LSTM"])
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(*args.worker, args.epochs)))
        return 0
    from ..device import cpu_description

    print(f"training throughput on {cpu_description()}, 1 PyTorch thread, {args.epochs} epochs x "
          f"{args.repeats} repeats per variant")
    for row in measure(args.models, args.epochs, args.repeats):
        print(f"  {row['model']:7s} {row['variant']:16s} {row['seconds_per_epoch']:6.2f} s/epoch "
              f"{row['targets_per_second']:9,.0f} targets/s  x{row['speedup']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
