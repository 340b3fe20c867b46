"""Where a model's parameters are: counts per named part, for the chapters that take a model
apart (the concepts chapter's GPT anatomy, the outlook chapter's int8 storage)."""

from __future__ import annotations

from typing import Callable, Mapping, Union

import pandas as pd

__all__ = ["parameter_parts"]

#: a parameter's part: a function of (name, tensor), or {substring of the name: part}
Parts = Union[Callable[[str, "object"], str], Mapping[str, str]]


def _part_of(parts: Parts, name: str, tensor) -> str:
    if callable(parts):
        return parts(name, tensor)
    for key, label in parts.items():
        if key in name:
            return label
    return "other"


def parameter_parts(model, parts: Parts) -> pd.DataFrame:
    """Learned numbers per part of ``model`` (a ``torch.nn.Module``): one row per part, in the
    order the parts first occur, columns ``parameters`` and ``share (%)`` (one decimal).

    ``parts`` names each parameter's part: a function of (parameter name, tensor), or a
    mapping whose first key contained in the name gives the part ("other" if none does).
    Every parameter is counted once, so the column sums to the model's parameter count.
    """
    counts: dict[str, int] = {}
    for name, tensor in model.named_parameters():
        label = _part_of(parts, name, tensor)
        counts[label] = counts.get(label, 0) + int(tensor.numel())
    if not counts:
        raise ValueError("the model has no parameters")
    total = sum(counts.values())
    frame = pd.DataFrame({"parameters": pd.Series(counts, dtype="int64")})
    frame["share (%)"] = (100 * frame["parameters"] / total).round(1)
    return frame
