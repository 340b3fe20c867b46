"""Glue computed values into the prose (``{glue:text}`name:.2f```), safely.

myst-nb formats a glued number from its ``text/plain`` repr; NumPy 2 scalars
print as ``np.float64(0.1)``, which cannot be formatted.  ``glue`` turns NumPy
scalars into Python numbers first and never displays the value under the cell.

The display data is exactly what myst-nb's own ``glue`` writes, so myst-nb reads it
back; it is written through IPython, so the chapters run where myst-nb is not
installed (on Colab, say).  A glued value that quotes a measured fact carries the
fact's key and its value in the output's metadata (``fact=``, see
:mod:`recnotes.report.facts`), so a test can find every page that quotes it.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

__all__ = ["glue", "glue_hidden", "plain", "GLUE_PREFIX", "FACT_METADATA"]

#: myst-nb's prefix of a glued value's MIME types (a front end shows no such output).
GLUE_PREFIX = "application/papermill.record/"
#: the metadata key of a glued fact (its key and its value in the record's unit)
FACT_METADATA = "recnotes_fact"


def plain(value: Any) -> Any:
    """NumPy scalars and 0-d arrays to the Python equivalents; anything else unchanged."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value


def glue(name: str, value: Any, fact: str | None = None, raw: Any = None) -> None:
    """Glue ``value`` under ``name`` without displaying it (returns nothing, so a cell
    ending in ``glue(...)`` shows no output).

    ``fact`` is the key of the measured fact the value quotes (see
    :func:`recnotes.report.facts.fact_key`) and ``raw`` its value in the record's unit,
    where the page shows it scaled or rounded (default: ``value``)."""
    meta = None
    if fact is not None:
        meta = {"key": fact, "value": plain(value if raw is None else raw)}
    glue_hidden(name, plain(value), meta)


def glue_all(facts: Mapping[str, Any]) -> None:
    """:func:`glue` every value of ``facts`` under its name (a package function's facts for a page)."""
    for name, value in facts.items():
        glue(name, value)


def glue_hidden(name: str, value: Any, fact: dict | None = None) -> None:
    """What ``myst_nb.glue(name, value, display=False)`` writes (the value's MIME bundle
    under :data:`GLUE_PREFIX`, and ``scrapbook`` metadata), plus the fact's metadata if
    any; outside an IPython kernel nothing is written."""
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
    if fact is not None:
        metadata[FACT_METADATA] = fact
    display({GLUE_PREFIX + k: v for k, v in bundle.items()}, raw=True, metadata=metadata)
