"""Pick the compute device once (CUDA, then Apple's MPS, then the CPU) and its precision.

The precision policy, per device (:func:`precision`):

* CUDA with native bf16 (compute capability 8.0 and newer: A100, L4, H100): bf16 autocast
  for training, bf16 weights for inference, no loss scaling (bf16 has float32's range);
* CUDA without it (capability below 8.0, such as Colab's free T4 at 7.5): float16 autocast
  with loss scaling for training (float16's small range would flush small gradients to
  zero), float16 weights for inference;
* a CPU that multiplies bf16 natively (AVX512-BF16 or AMX): bf16 for the largest products
  (the output layer in training, the LLM's weights), float32 elsewhere;
* any other CPU, and MPS: float32.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

__all__ = ["get_device", "Precision", "precision", "autocast_dtype", "describe_device", "cpu_note", "native_cpu_bf16", "inference_dtype",
           "training_dtype", "keep_freed_memory", "cpu_description"]


def get_device(prefer: str | torch.device | None = None) -> torch.device:
    """The device to run on: ``prefer`` (or ``$RECNOTES_DEVICE``) if given, else the best available."""
    choice = prefer if prefer is not None else os.environ.get("RECNOTES_DEVICE")
    if choice is not None:
        return torch.device(choice)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass(frozen=True)
class Precision:
    """What a device computes in (:func:`precision`)."""

    #: autocast dtype of the training forward pass (None: float32, no autocast)
    autocast: torch.dtype | None
    #: dtype of the output layer's matrix products in training
    head: torch.dtype
    #: dtype of a pretrained LLM's weights when it only scores
    inference: torch.dtype
    #: whether training scales the loss (float16 gradients underflow without it)
    loss_scaling: bool
    #: why, in words (for a benchmark's or a GPU check's report)
    reason: str


def precision(device: torch.device | str) -> Precision:
    """The precision policy of ``device`` (see the module docstring)."""
    device = torch.device(device)
    if device.type == "cuda":
        index = 0 if device.index is None else device.index
        major, minor = torch.cuda.get_device_capability(index)
        if major >= 8:
            return Precision(torch.bfloat16, torch.bfloat16, torch.bfloat16, False,
                             f"CUDA compute capability {major}.{minor}: native bf16")
        return Precision(torch.float16, torch.float16, torch.float16, True,
                         f"CUDA compute capability {major}.{minor}: no native bf16, float16 with loss scaling")
    if device.type == "cpu" and native_cpu_bf16():
        return Precision(None, torch.bfloat16, torch.bfloat16, False,
                         "CPU with native bf16 (AVX512-BF16 or AMX): bf16 for the largest products")
    return Precision(None, torch.float32, torch.float32, False,
                     f"{device.type.upper()} without native bf16: float32")


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The training forward pass's autocast dtype: bf16 or float16 on CUDA (by the card),
    ``None`` (full float32) elsewhere."""
    return precision(device).autocast


@lru_cache(maxsize=1)
def native_cpu_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX-BF16, read from
    ``/proc/cpuinfo``); without it PyTorch emulates bf16 on the CPU, slower than float32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", flags) is not None


_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _forced(variable: str) -> torch.dtype | None:
    forced = os.environ.get(variable)
    if not forced:
        return None
    if forced not in _DTYPES:
        raise ValueError(f"{variable} must be one of {', '.join(_DTYPES)}, not {forced!r}")
    return _DTYPES[forced]


def inference_dtype(device: torch.device) -> torch.dtype:
    """The weights' dtype for running a pretrained LLM: bf16 on CUDA cards and CPUs with native
    bf16 (about 2.7 times faster than float32 for SmolLM2 on one such core), float16 on CUDA
    cards without native bf16, float32 elsewhere.  ``$RECNOTES_LLM_DTYPE`` (``float32``,
    ``bfloat16`` or ``float16``) overrides it."""
    return _forced("RECNOTES_LLM_DTYPE") or precision(device).inference


def training_dtype(device: torch.device) -> torch.dtype:
    """The precision of the output layer's matrix products in training (the largest ones):
    bf16 on CUDA cards and CPUs with native bf16 (about 3.5 times faster than float32 for that
    layer on one such core), float16 on CUDA cards without native bf16, float32 elsewhere.
    ``$RECNOTES_TRAIN_DTYPE`` overrides it."""
    return _forced("RECNOTES_TRAIN_DTYPE") or precision(device).head


@lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Ask glibc's allocator to keep freed blocks of up to 32 MB in the process (Linux only).

    By default glibc serves large blocks with fresh pages from the kernel and gives them
    back when they are freed, so every training step pays page faults again for its
    activations and logits; keeping them cut a GPTRec epoch on one CPU core by about a
    fifth.  Returns whether the setting took effect (False on other platforms).
    """
    if platform.system() != "Linux":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # from <malloc.h>
        return bool(libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)
                    and libc.mallopt(m_trim_threshold, 256 * 1024 * 1024))
    except (OSError, AttributeError):
        return False


@lru_cache(maxsize=1)
def cpu_description() -> str:
    """The processor's model name, core count and the flags that decide speed here
    (AVX2, AVX-512, native bf16), for the records that carry timings."""
    name, flags = platform.processor() or platform.machine(), ""
    try:
        info = Path("/proc/cpuinfo").read_text()
        name = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                     if line.startswith("model name")), name)
        flags = next((line.split(":", 1)[1] for line in info.splitlines() if line.startswith("flags")), "")
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
    present = [f for f in wanted if re.search(rf"\b{f}\b", flags)]
    return f"{name}, {os.cpu_count()} cores, flags: {' '.join(present) or 'none of ' + ' '.join(wanted)}"


def cpu_note(device: torch.device | str | None = None) -> str:
    """One sentence for a page that reports trained models: where its numbers were computed,
    and that their last digits depend on the processor."""
    device = get_device(device)
    if device.type != "cpu":
        return (f"The trained models' numbers on this page were computed on {describe_device(device)}; "
                f"on another device their last digits differ.")
    precision = ("bf16, which it multiplies natively" if training_dtype(device) == torch.bfloat16
                 else "float32, as it has no native bf16")
    return (f"The trained models' numbers on this page were computed on {cpu_description()}, in {precision}; "
            f"on another processor (bf16 where it is native, float32 elsewhere) a retrained seed differs "
            f"in its second or third decimal, inside the intervals shown, and the mean over seeds less.")


def machine_note(recorded: str, here: str | None = None) -> str:
    """What a page that renders a record adds when the record was computed on another processor
    than this build (``here``, default :func:`cpu_description`): empty when the models match;
    else a sentence that says so and what it changes."""
    here = cpu_description() if here is None else here
    if recorded.split(",")[0].strip() == here.split(",")[0].strip():
        return ""
    return (f"That is another processor than the one that computed this build's chapters "
            f"({here.split(',')[0]}): the scores of the settings do not depend on it beyond the third "
            f"decimal, their seconds do.")


def describe_device(device: torch.device) -> str:
    """A short human-readable name: ``cpu``, ``mps`` or the CUDA card's name."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type
