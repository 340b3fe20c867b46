"""Files that are whole or absent: atomic writes, checksums, and broken entries moved aside.

The experiment cache and the training checkpoints are written with
:func:`write_atomic` (a temporary file in the same folder, then a rename), so a
run killed mid-write leaves the previous file or none, never one cut short.
Their JSON records the SHA-256 of the weights they go with, checked on load;
what fails the check is moved aside with :func:`move_aside`, which says so in
one line on stderr, and is computed again.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
from pathlib import Path
from typing import Callable

__all__ = ["file_sha256", "write_atomic", "move_aside"]


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def write_atomic(path: str | Path, write: Callable[[Path], object]) -> None:
    """Call ``write(temporary_path)``, then rename the temporary file to ``path``, so a reader
    sees the old file or the whole new one, never a file cut short."""
    path = Path(path)
    # a name of its own per process and thread: two writers of one key never share a temporary file
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.part")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def move_aside(path: str | Path, what: str, reason: str, then: str = "training again") -> Path:
    """Rename a broken file or folder to ``<name>.broken-<time>`` and say so in one line on stderr."""
    path = Path(path)
    target = path.with_name(f"{path.name}.broken-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    path.rename(target)
    print(f"recnotes: {what} at {path} cannot be used ({reason}); moved it to {target} and {then}",
          file=sys.stderr, flush=True)
    return target
