"""Glue computed values into the prose (``{glue:text}`name:.2f```), safely.

myst-nb formats a glued number from its ``text/plain`` repr; NumPy 2 scalars
print as ``np.float64(0.1)``, which cannot be formatted.  ``glue`` turns NumPy
scalars into Python numbers first and never displays the value under the cell.

myst-nb is needed only to build the book (the ``book`` extra): where it is not
installed (on Colab, say), ``glue`` writes the same display data through IPython,
so the chapters run there too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["glue", "glue_hidden", "plain"]

#: myst-nb's prefix of a glued value's MIME types (a front end shows no such output).
GLUE_PREFIX = "application/papermill.record/"


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
    glue_hidden(name, plain(value))


def glue_hidden(name: str, value: Any) -> None:
    """``myst_nb.glue(name, value, display=False)``, also where myst-nb is not installed.

    Without myst-nb, the same display data (the value's MIME bundle under
    :data:`GLUE_PREFIX`, and ``scrapbook`` metadata) is written by IPython; outside
    an IPython kernel nothing is written.
    """
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        pass
    else:
        myst_glue(name, value, display=False)
        return
    try:
        from IPython.core.formatters import format_display_data
        from IPython.core.interactiveshell import InteractiveShell
        from IPython.display import display
    except ImportError:
        return
    if not InteractiveShell.initialized():
        return
    bundle, metadata = format_display_data(value)
    metadata["scrapbook"] = {"name": name, "mime_prefix": GLUE_PREFIX}
    display({GLUE_PREFIX + k: v for k, v in bundle.items()}, raw=True, metadata=metadata)
