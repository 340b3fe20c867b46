"""Progress bars for long work, quiet where nobody watches.

Interactive sessions (a terminal, Jupyter, Colab) get a tqdm bar, a widget
where ipywidgets is installed and text otherwise.  ``RECNOTES_PROGRESS=0``
turns bars off: the book's executor sets it, so the published chapters do not
carry hundreds of lines of bar updates in their outputs.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["progress_bar", "progress_enabled", "hf_progress"]


def progress_enabled() -> bool:
    """False when ``$RECNOTES_PROGRESS`` is ``0``, ``false`` or ``no``."""
    return os.environ.get("RECNOTES_PROGRESS", "1").lower() not in ("0", "false", "no")


def progress_bar(iterable: Any = None, *, disable: bool = False, **kwargs: Any):
    """``tqdm(iterable, **kwargs)``, disabled when asked or when progress is turned off."""
    try:
        import ipywidgets  # noqa: F401  (a widget bar only where widgets can render)
        from tqdm.auto import tqdm
    except ImportError:
        from tqdm.std import tqdm
    return tqdm(iterable, disable=disable or not progress_enabled(), **kwargs)


class hf_progress:
    """Context manager: Hugging Face's own bars (GGUF conversion, weight loading) follow
    :func:`progress_enabled` and are restored afterwards."""

    def __enter__(self) -> "hf_progress":
        self._was = None
        if not progress_enabled():
            try:
                from transformers.utils import logging as hf_logging
            except ImportError:
                return self
            self._was = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._was:
            from transformers.utils import logging as hf_logging

            hf_logging.enable_progress_bar()
