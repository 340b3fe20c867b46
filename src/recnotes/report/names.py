"""Display names: what a table or a figure shows for a model's identifier.

The results files and the caches key models by identifiers such as
``LLMRanker[likelihood,recency]``; a reader sees "LLM zero-shot, chat prompt".
:func:`display_name` is the one mapping, used by tables and figures alike.
"""

from __future__ import annotations

import re
from typing import Iterable

import pandas as pd

__all__ = ["display_name", "relabel"]

_PROMPTS = {"recency": "chat prompt", "sequential": "chat prompt (sequential)",
            "in_context": "chat prompt (in-context)", "completion": "completion prompt", "list": "list prompt"}
_LLM = re.compile(r"^LLMRanker\[(?P<how>[^,\]]+),(?P<template>[^\]]+)\](?P<rest>.*)$")
#: other models whose identifier a reader would not parse
_NAMES = {"LLMItemHead": "LLM with item head"}


def display_name(name: str) -> str:
    """A model's name for a reader (identifiers of other models are returned as they are)."""
    m = _LLM.match(str(name))
    if not m:
        return _NAMES.get(str(name), str(name))
    prompt = _PROMPTS.get(m["template"], m["template"])
    how = m["how"]
    if how.startswith("LoRA whole pass"):
        label = "LLM fine-tuned, whole data" + (", the book's settings" if "book" in how else "")
    elif how.startswith("LoRA "):
        n = how.split()[1]
        label = f"LLM fine-tuned ({int(n):,} targets)" if n.isdigit() else f"LLM fine-tuned ({how})"
    elif how == "likelihood":
        label = f"LLM zero-shot, {prompt}"
    else:
        label = f"LLM {how}, {prompt}"
    return label + m["rest"]


def relabel(frame: pd.DataFrame, names: Iterable[str] | None = None) -> pd.DataFrame:
    """``frame`` with its index (model identifiers) shown as display names."""
    out = frame.rename(index=display_name)
    out.attrs = frame.attrs
    return out
