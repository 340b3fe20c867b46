"""The efficiency meter: time, throughput, latency, memory, parameters and FLOPs.

Everything comes out as plain dicts keyed by the metric names of the results
format (DESIGN.md): ``train_seconds``, ``seconds_per_epoch``,
``eval_users_per_second``, ``latency_p50_ms``, ``latency_p95_ms``, ``params``,
``peak_memory_mb``, ``flops_per_request``.

Peak memory is the CUDA allocator's peak (``torch.cuda.max_memory_allocated``,
reset at the start of the block) on CUDA, and on the CPU the highest resident
set size of the whole process sampled every few milliseconds during the block
(so it includes the data and libraries already loaded).  FLOPs are PyTorch's
count (``torch.utils.flop_counter.FlopCounterMode``) of matrix products and
attention; work done outside PyTorch (NumPy, SciPy) is not counted.
"""

from __future__ import annotations

import math
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import psutil
import scipy.sparse as sp
import torch

__all__ = ["Measurement", "measure", "latency_ms", "count_params", "flops_per_request", "request_flops", "cost_row",
           "request", "EfficiencyMeter", "EFFICIENCY_METRICS"]

EFFICIENCY_METRICS = ("train_seconds", "seconds_per_epoch", "eval_users_per_second",
                      "latency_p50_ms", "latency_p95_ms", "params", "peak_memory_mb",
                      "flops_per_request")
_MB = 2 ** 20


@dataclass
class Measurement:
    """Wall time and peak memory of one measured block (filled in when it ends)."""

    seconds: float = math.nan
    peak_memory_mb: float = math.nan
    start_memory_mb: float = math.nan  # the same gauge when the block began

    @property
    def added_memory_mb(self) -> float:
        """How far memory rose above its level at the start of the block."""
        return self.peak_memory_mb - self.start_memory_mb


def _is_cuda(device: Any) -> bool:
    return device is not None and torch.device(device).type == "cuda"


def _sync(device: Any) -> None:
    if _is_cuda(device):
        torch.cuda.synchronize(torch.device(device))


@contextmanager
def measure(device: torch.device | str | None = None, interval: float = 0.005) -> Iterator[Measurement]:
    """Measure the wall time and peak memory of a ``with`` block (see the module docstring)."""
    m = Measurement()
    stop = threading.Event()
    peak = [0]
    sampler = None
    if _is_cuda(device):
        torch.cuda.synchronize(torch.device(device))
        torch.cuda.reset_peak_memory_stats(torch.device(device))
        m.start_memory_mb = torch.cuda.memory_allocated(torch.device(device)) / _MB
    else:
        proc = psutil.Process()
        peak[0] = proc.memory_info().rss
        m.start_memory_mb = peak[0] / _MB

        def sample() -> None:
            while not stop.wait(interval):
                peak[0] = max(peak[0], proc.memory_info().rss)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
    start = time.perf_counter()
    try:
        yield m
    finally:
        _sync(device)
        m.seconds = time.perf_counter() - start
        if sampler is not None:
            stop.set()
            sampler.join()
            peak[0] = max(peak[0], psutil.Process().memory_info().rss)
            m.peak_memory_mb = peak[0] / _MB
        else:
            m.peak_memory_mb = torch.cuda.max_memory_allocated(torch.device(device)) / _MB


def latency_ms(fn: Callable[[], Any], repeats: int = 50, warmup: int = 3,
               device: torch.device | str | None = None) -> dict[str, float]:
    """p50 and p95 wall time (milliseconds) of ``repeats`` calls of ``fn`` (one request each)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, not {repeats}")
    with torch.no_grad():
        for _ in range(warmup):
            fn()
        _sync(device)
        times = np.empty(repeats)
        for i in range(repeats):
            start = time.perf_counter()
            fn()
            _sync(device)
            times[i] = time.perf_counter() - start
    return {"latency_p50_ms": float(np.percentile(times, 50) * 1e3),
            "latency_p95_ms": float(np.percentile(times, 95) * 1e3)}


def request(model: Any, history: np.ndarray) -> Callable[[], Any]:
    """A batch-1 request: a function that scores one user's ``history`` with ``model``."""
    return lambda: model.score([np.asarray(history, np.int64)])


def count_params(model: Any) -> int:
    """Learned numbers in a model: an ``n_params`` attribute if it has one, the parameters
    of a ``torch.nn.Module``, else the sizes of the tensors and arrays it holds as
    attributes (for example EASE's item-item matrix)."""
    n = getattr(model, "n_params", None)
    if isinstance(n, (int, np.integer)):
        return int(n)
    if isinstance(model, torch.nn.Module):
        return sum(p.numel() for p in model.parameters())
    total = 0
    for value in vars(model).values() if hasattr(model, "__dict__") else ():
        if isinstance(value, torch.nn.Module):
            total += sum(p.numel() for p in value.parameters())
        elif isinstance(value, torch.Tensor):
            total += value.numel()
        elif isinstance(value, np.ndarray):
            total += value.size
        elif sp.issparse(value):
            total += value.nnz
    return int(total)


def flops_per_request(fn: Callable[[], Any]) -> int:
    """FLOPs that PyTorch counts during one call of ``fn`` (0 when no counted op ran)."""
    from torch.utils.flop_counter import FlopCounterMode  # imported on use: it is slow to import
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def request_flops(model: Any, history: np.ndarray) -> int:
    """FLOPs of one request: the model's own count where it computes outside PyTorch
    (``model.request_flops(history)``: ItemKNN in SciPy, or none at all), else PyTorch's."""
    own = getattr(model, "request_flops", None)
    return int(own(np.asarray(history, np.int64))) if own is not None else flops_per_request(request(model, history))


def cost_row(model: Any, split: Any, history: np.ndarray, train_seconds: float,
             users_per_second: float | None = None, repeats: int = 30, warmup: int = 3) -> dict[str, float]:
    """What a model costs, as chapter 9's table shows it: learned numbers, ``train_seconds``,
    users per second of a whole-catalogue evaluation of ``split``'s test users (or the figure
    given), the median latency of one request for ``history`` and its FLOPs."""
    from .protocols import evaluate_full

    if users_per_second is None:
        users_per_second = evaluate_full(model, split, ks=(10,)).users_per_second
    return {"parameters": count_params(model), "training (s)": float(train_seconds),
            "users / s": float(users_per_second),
            "latency p50 (ms)": latency_ms(request(model, history), repeats=repeats, warmup=warmup)["latency_p50_ms"],
            "FLOPs / request": request_flops(model, history)}


class EfficiencyMeter:
    """Collects one model's efficiency figures into a plain dict.

    >>> meter = EfficiencyMeter()
    >>> with meter.train():
    ...     for epoch in range(2):
    ...         with meter.epoch():
    ...             pass
    >>> sorted(meter.as_dict())[:2]
    ['peak_memory_mb', 'seconds_per_epoch']
    """

    def __init__(self, device: torch.device | str | None = None) -> None:
        self.device = device
        self.figures: dict[str, float] = {}
        self._epochs: list[float] = []

    def _peak(self, m: Measurement) -> None:
        if not math.isnan(m.peak_memory_mb):
            self.figures["peak_memory_mb"] = max(self.figures.get("peak_memory_mb", 0.0), m.peak_memory_mb)

    @contextmanager
    def train(self) -> Iterator[Measurement]:
        """Time the whole training (``train_seconds``) and track peak memory."""
        with measure(self.device) as m:
            yield m
        self.figures["train_seconds"] = m.seconds
        self._peak(m)

    @contextmanager
    def epoch(self) -> Iterator[None]:
        """Time one epoch; ``seconds_per_epoch`` is the mean over epochs."""
        _sync(self.device)
        start = time.perf_counter()
        yield
        _sync(self.device)
        self._epochs.append(time.perf_counter() - start)
        self.figures["seconds_per_epoch"] = float(np.mean(self._epochs))

    @contextmanager
    def evaluation(self, n_users: int) -> Iterator[Measurement]:
        """Time an evaluation of ``n_users`` users (``eval_users_per_second``)."""
        with measure(self.device) as m:
            yield m
        self.figures["eval_users_per_second"] = n_users / m.seconds if m.seconds > 0 else math.nan
        self._peak(m)

    def latency(self, fn: Callable[[], Any], repeats: int = 50, warmup: int = 3) -> dict[str, float]:
        """Single-request latency p50/p95 (see :func:`latency_ms`)."""
        out = latency_ms(fn, repeats, warmup, self.device)
        self.figures.update(out)
        return out

    def params(self, model: Any) -> int:
        """Record ``params`` (see :func:`count_params`)."""
        self.figures["params"] = count_params(model)
        return int(self.figures["params"])

    def flops(self, fn: Callable[[], Any]) -> int:
        """Record ``flops_per_request`` of one call of ``fn``."""
        self.figures["flops_per_request"] = flops_per_request(fn)
        return int(self.figures["flops_per_request"])

    def as_dict(self, names: Sequence[str] = EFFICIENCY_METRICS) -> dict[str, float]:
        """The figures recorded so far, in the order of ``names``."""
        return {k: self.figures[k] for k in names if k in self.figures}
