"""Glue computed values into the prose (``{glue:text}`name:.2f```), safely.

myst-nb formats a glued number from its ``text/plain`` repr; NumPy 2 scalars
print as ``np.float64(0.1)``, which cannot be formatted.  ``glue`` turns NumPy
scalars into Python numbers first and never displays the value under the cell.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["glue", "plain"]


def plain(value: Any) -> Any:
    """NumPy scalars and 0-d arrays to the Python equivalents; anything else unchanged."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value


def glue(name: str, value: Any) -> None:
    """Glue ``value`` under ``name`` without displaying it (returns nothing, so a cell
    ending in ``glue(...)`` shows no output)."""
    from myst_nb import glue as _glue

    _glue(name, plain(value), display=False)
