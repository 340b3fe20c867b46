"""The one trainer of recnotes' neural sequence models (LSTM, GPTRec), which their ``fit`` calls.

Each user's training sequence is read once per epoch and every position
predicts its next item (shifted targets, padding ignored) with a full-softmax
cross-entropy over the catalogue, computed by the fused output layer of
:mod:`recnotes.models.kernels`, in the device's precision (:func:`recnotes.device.precision`:
bf16 where it is native, float16 with loss scaling on older CUDA cards, float32
elsewhere).  Seeded, device-agnostic, AdamW with linear warm-up then cosine decay, early stopping on
validation NDCG@10 with patience, best weights restored, and a checkpoint
(safetensors + JSON) after every epoch from which an interrupted run resumes.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch

from ..data.splits import pad_sequences
from ..device import get_device, keep_freed_memory, precision, training_dtype
from .kernels import linear_cross_entropy, using_reference
from ..progress import progress_bar
from ..safeio import load_optimizer, optimizer_tensors, read_checkpoint, save_checkpoint

if TYPE_CHECKING:  # pragma: no cover
    from ..data.splits import Split

__all__ = ["TrainConfig", "train", "seed_everything", "training_windows", "validation_ndcg"]


@dataclass(frozen=True)
class TrainConfig:
    """How to train; the defaults are the values tuned for GPTRec on ML-100K's validation split."""

    lr: float = 1e-3
    weight_decay: float = 0.1
    batch_size: int = 16
    max_epochs: int = 40  # hard cap (a profile's max_epochs may cap it further)
    decay_epochs: int = 40  # horizon of the cosine decay; after it the rate stays at its floor
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.05
    patience: int = 10  # evaluations without improvement of the (smoothed) validation metric
    smooth: float = 0.5  # EMA weight of the past in the monitored metric (0 = raw NDCG@10)
    eval_every: int = 1
    grad_clip: float = 1.0
    window_stride: int | None = None  # None: windows of max_len without overlap
    seed: int = 0


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def training_windows(sequences: Sequence[np.ndarray], max_len: int,
                     stride: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and shifted targets ``[n_windows, max_len]`` (left-padded with 0).

    A sequence ``s`` gives inputs ``s[:-1]`` and targets ``s[1:]``.  Longer
    sequences are cut into windows of ``max_len`` positions whose ends step back
    from the sequence's end by ``stride`` items (default ``max_len``: no
    overlap).  A window keeps only its last ``stride`` targets (the earliest
    window keeps all of its targets) and blanks the others to 0, so every item
    is a target exactly once per epoch, and with ``stride < max_len`` each target
    sees at least ``max_len - stride`` earlier items (or all there are).
    """
    if max_len < 2:
        raise ValueError(f"max_len must be >= 2, got {max_len}")
    stride = max_len if stride is None else stride
    if not 1 <= stride <= max_len:
        raise ValueError(f"stride must be in 1..max_len ({max_len}), got {stride}")
    xs, ys = [], []
    for s in sequences:
        s = np.asarray(s, dtype=np.int64)
        x, y = s[:-1], s[1:]
        for end in range(len(x), 0, -stride):
            start = max(0, end - max_len)
            yw = y[start:end].copy()
            if start > 0:
                yw[:max(0, end - stride - start)] = 0  # these targets belong to earlier windows
            xs.append(x[start:end])
            ys.append(yw)
            if start == 0:
                break
    if not xs:
        raise ValueError("no training data: every training sequence has fewer than 2 items")
    return pad_sequences(xs, max_len), pad_sequences(ys, max_len)


def _batches(lengths: torch.Tensor, batch_size: int, gen: torch.Generator) -> list[torch.Tensor]:
    """Shuffled batches of window indices; windows of similar length share a batch."""
    perm = torch.randperm(len(lengths), generator=gen)
    group = batch_size * 16
    batches = []
    for start in range(0, len(perm), group):
        chunk = perm[start:start + group]
        chunk = chunk[torch.argsort(lengths[chunk], descending=True, stable=True)]
        batches.extend(chunk.split(batch_size))
    order = torch.randperm(len(batches), generator=gen)
    return [batches[i] for i in order]


def validation_ndcg(model, split: "Split", k: int = 10) -> float:
    """Mean NDCG@k of the validation items, full ranking with seen items masked."""
    from ..evaluate.protocols import evaluate_full

    result = evaluate_full(model, split, stage="valid", ks=(k,))
    return float(result.per_user[f"NDCG@{k}"].mean())


def _lr_factor(step: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    warm = max(1, int(cfg.warmup_epochs * steps_per_epoch))
    if step < warm:
        return (step + 1) / warm
    horizon = max(1, cfg.decay_epochs * steps_per_epoch - warm)
    t = min(1.0, (step - warm) / horizon)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def train(model: torch.nn.Module, split: "Split", cfg: TrainConfig | None = None, *,
          checkpoint_dir: str | Path | None = None, device: str | torch.device | None = None,
          progress: bool = True, metric: Callable[..., float] = validation_ndcg,
          max_seconds: float | None = None) -> list[dict]:
    """Train ``model`` (a built :class:`~recnotes.models.base.SequenceRecommender`) on
    ``split``'s training sequences; return the per-epoch history
    ``[{epoch, loss, valid_ndcg10, monitor, seconds, lr}]``.

    The weights of the best monitored epoch are restored at the end.  With
    ``checkpoint_dir`` the state is saved after every epoch and an interrupted
    run with the same configuration resumes from it.  ``max_seconds`` stops
    training after the first epoch that ends past that much wall time (the
    last history row then has ``"stopped": "time"``); the tuning search uses it
    to give up on configurations far over its time budget.
    """
    cfg = cfg or TrainConfig()
    seed_everything(cfg.seed)
    device = get_device(device)
    if device.type == "cpu":
        keep_freed_memory()
    model.to(device)
    x_all, y_all = training_windows(split.train, model.max_len, cfg.window_stride)
    lengths = (x_all != 0).sum(1)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    # the fused AdamW kernel (one call for all parameters) where PyTorch has it for the device
    fused = device.type in ("cpu", "cuda") and not using_reference()
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, fused=fused or None)
    gen = torch.Generator().manual_seed(cfg.seed)
    policy = precision(device)
    amp = policy.autocast
    head_dtype = training_dtype(device)
    # float16 autocast (CUDA cards without native bf16) scales the loss; elsewhere a pass-through
    scaler = torch.amp.GradScaler(device.type, enabled=policy.loss_scaling)
    history: list[dict] = []
    best, best_state, bad, start = -math.inf, None, 0, 0
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    signature = {"train": asdict(cfg), "model": model.config(), "n_items": model.n_items}
    resumed = read_checkpoint(ckpt, signature) if ckpt is not None else None
    if resumed is not None:
        tensors, meta = resumed
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        best_state = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")} or None
        load_optimizer(opt, tensors, meta["optimizer"])
        gen.set_state(tensors["rng.gen"])
        torch.set_rng_state(tensors["rng.torch"])
        history, best, bad, start = meta["history"], meta["best"], meta["bad"], meta["epoch"]
    steps_per_epoch = math.ceil(len(x_all) / cfg.batch_size)
    done = start >= cfg.max_epochs or bad >= cfg.patience
    bar = progress_bar(range(start, cfg.max_epochs), disable=not progress or done, desc=model.name, leave=False)
    began = time.perf_counter() - sum(h["seconds"] for h in history)
    for epoch in bar if not done else []:
        t0 = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        for i, idx in enumerate(_batches(lengths, cfg.batch_size, gen)):
            step = epoch * steps_per_epoch + i
            for group in opt.param_groups:
                group["lr"] = cfg.lr * _lr_factor(step, steps_per_epoch, cfg)
            width = int(lengths[idx].max())
            x = x_all[idx, -width:].to(device)
            y = y_all[idx, -width:].to(device)
            where = y != 0
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                h = model.hidden_at(x, where)
            weight, bias = model.output_layer()
            loss = linear_cross_entropy(h, weight, bias, y[where], head_dtype)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(opt)
            scaler.update()
            total += float(loss.detach()) * int(where.sum())
            count += int(where.sum())
        row = {"epoch": epoch + 1, "loss": total / count, "lr": opt.param_groups[0]["lr"]}
        if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.max_epochs:
            score = metric(model, split)
            prev = next((h["monitor"] for h in reversed(history) if h.get("monitor") is not None), None)
            monitor = score if prev is None else cfg.smooth * prev + (1 - cfg.smooth) * score
            row.update(valid_ndcg10=score, monitor=monitor)
            if monitor > best:
                best, bad = monitor, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                bad += 1
        row["seconds"] = time.perf_counter() - t0
        history.append(row)
        bar.set_postfix(loss=f"{row['loss']:.3f}", ndcg10=f"{row.get('valid_ndcg10', float('nan')):.4f}")
        if ckpt is not None:
            opt_tensors, opt_meta = optimizer_tensors(opt)
            tensors = {**{f"model.{k}": v for k, v in model.state_dict().items()},
                       **{f"best.{k}": v for k, v in (best_state or {}).items()}, **opt_tensors,
                       "rng.gen": gen.get_state(), "rng.torch": torch.get_rng_state()}
            save_checkpoint(ckpt, tensors, {"signature": signature, "history": history, "best": best,
                                  "bad": bad, "epoch": epoch + 1, "optimizer": opt_meta})
        if bad >= cfg.patience:
            break
        if max_seconds is not None and time.perf_counter() - began > max_seconds and epoch + 1 < cfg.max_epochs:
            history[-1]["stopped"] = "time"
            break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history
