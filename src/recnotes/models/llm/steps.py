"""The training loop of the two LLM models that learn: the LoRA fine-tuning of
:class:`~recnotes.models.llm.finetune.FineTunedLLMRanker` and the item-head LLM
(:class:`~recnotes.models.llm.itemhead.ItemHeadLLM`).

:func:`run_steps` takes optimizer steps over a schedule fixed in advance (each step's batch and
its number of targets), with the learning rate warmed up and then decayed linearly to zero
(:func:`linear_lr`) and the gradients clipped at 1.  With a folder it checkpoints the state
(the model's trained tensors, the optimizer, the random state) every so many steps, so an
interrupted run resumes where it stopped, and keeps the model after given numbers of targets.

The model is a :class:`Trainee`: it says which tensors a checkpoint holds, and how to keep a
model; the step's loss (and its gradient) is a function given to the loop.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np
import torch

from ...progress import progress_bar
from ...safeio import load_optimizer, optimizer_tensors, read_checkpoint, save_checkpoint

__all__ = ["Trainee", "linear_lr", "run_steps"]


class Trainee(Protocol):
    """What :func:`run_steps` needs of the model it trains (it sets the three counters)."""

    history: list[dict]
    train_seconds: float
    targets_seen: int

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        """The trained tensors, by name."""

    def load_checkpoint_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Put back what :meth:`checkpoint_state` gave."""

    def keep_model(self, folder: Path, targets: int) -> None:
        """Save the model as it is after ``targets`` targets, in ``folder``."""


def linear_lr(base: float, step: int, steps: int, warmup: int) -> float:
    """The learning rate of ``step`` (from 0) of ``steps``: ``base`` reached linearly over the
    first ``warmup`` steps, then decayed linearly to zero at ``steps``."""
    if step < warmup:
        return base * (step + 1) / warmup
    return base * max(0.0, (steps - step) / max(1, steps - warmup))


def run_steps(trainee: Trainee, opt: torch.optim.Optimizer, params: Sequence[torch.nn.Parameter],
              step_targets: Sequence[int], step_loss: Callable[[int], torch.Tensor], *, warmup: int,
              signature: dict, folder: str | Path | None = None, keep: Sequence[int] = (),
              keep_beyond: bool = False, checkpoint_every: int = 50, scaler: torch.amp.GradScaler | None = None,
              reseed: int | None = None, desc: str = "training (targets)", progress: bool = True,
              max_seconds: float | None = None) -> None:
    """Train ``trainee`` for ``len(step_targets)`` steps, step ``i`` counting ``step_targets[i]``
    targets; ``step_loss(i)`` computes step ``i``'s loss and its gradient (``backward``) and
    returns the loss.  Every parameter group's learning rate follows :func:`linear_lr` from the
    one it has when the loop starts.

    ``folder``: where the checkpoint goes (every ``checkpoint_every`` steps, at every kept size
    and at the end) and where a run with the same ``signature`` resumes from; the model is kept
    (:meth:`Trainee.keep_model`) after each size of ``keep`` that a step crosses and at the end,
    and with ``keep_beyond`` the end also stands for the sizes of ``keep`` the run never reaches.
    ``scaler``: the loss scaler of float16 weights (its ``backward`` is ``step_loss``'s).
    ``reseed``: the torch seed, offset by the first step (a resumed run draws what it would have).
    ``max_seconds``: stop after the step that ends past that many training seconds (the last
    history row then says ``"stopped": "time"``)."""
    base = [group["lr"] for group in opt.param_groups]
    scaler = scaler if scaler is not None else torch.amp.GradScaler("cpu", enabled=False)
    steps = len(step_targets)
    seen_after = np.cumsum(step_targets, dtype=np.int64)
    folder = Path(folder) if folder is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    start, trainee.history, trainee.train_seconds = 0, [], 0.0
    resumed = read_checkpoint(folder, signature) if folder is not None else None
    if resumed is not None:
        tensors, meta = resumed
        trainee.load_checkpoint_state({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        load_optimizer(opt, tensors, meta["optimizer"])
        torch.set_rng_state(tensors["rng.torch"])
        start, trainee.history, trainee.train_seconds = meta["step"], meta["history"], meta["train_seconds"]
    trainee.targets_seen = int(seen_after[start - 1]) if start else 0
    if reseed is not None:
        torch.manual_seed(reseed + start)
    bar = progress_bar(total=int(seen_after[-1]) if steps else 0, initial=trainee.targets_seen, desc=desc,
                       leave=False, disable=not progress)
    for step in range(start, steps):
        t0 = time.perf_counter()
        for group, lr in zip(opt.param_groups, base):
            group["lr"] = linear_lr(lr, step, steps, warmup)
        opt.zero_grad(set_to_none=True)
        loss = float(step_loss(step))
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        scaler.step(opt)
        scaler.update()
        before = trainee.targets_seen
        trainee.targets_seen = seen = int(seen_after[step])
        trainee.train_seconds += time.perf_counter() - t0
        trainee.history.append({"step": step + 1, "targets": seen, "loss": loss, "seconds": trainee.train_seconds})
        bar.update(seen - before)
        bar.set_postfix(loss=f"{loss:.3f}")
        last = step + 1 == steps
        if folder is not None:
            kept = [k for k in keep if before < k <= seen]
            if last:
                kept += [k for k in keep if k > seen] if keep_beyond else []
                kept += [] if seen in kept else [seen]
            for k in kept:
                trainee.keep_model(folder, k)
            if kept or last or (step + 1) % checkpoint_every == 0:
                opt_tensors, opt_meta = optimizer_tensors(opt)
                tensors = {f"model.{k}": v for k, v in trainee.checkpoint_state().items()}
                tensors.update(opt_tensors, **{"rng.torch": torch.get_rng_state()})
                save_checkpoint(folder, tensors, {"signature": signature, "step": step + 1, "history": trainee.history,
                                                  "train_seconds": trainee.train_seconds, "optimizer": opt_meta})
        if max_seconds is not None and trainee.train_seconds > max_seconds and not last:
            trainee.history[-1]["stopped"] = "time"
            break
    bar.close()
