"""Pick the compute device once: CUDA, then Apple's MPS, then the CPU."""

from __future__ import annotations

import os

import torch

__all__ = ["get_device", "autocast_dtype", "describe_device"]


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


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 for mixed precision on CUDA; ``None`` (full float32) elsewhere."""
    return torch.bfloat16 if torch.device(device).type == "cuda" else None


def describe_device(device: torch.device) -> str:
    """A short human-readable name: ``cpu``, ``mps`` or the CUDA card's name."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type
