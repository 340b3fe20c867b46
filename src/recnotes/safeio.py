"""Files that are whole or absent: atomic writes, checksums, broken entries moved aside, and the
training checkpoints written with them.

The experiment cache and the training checkpoints are written with
:func:`write_atomic` (a temporary file in the same folder, then a rename), so a
run killed mid-write leaves the previous file or none, never one cut short.
Their JSON records the SHA-256 of the weights they go with, checked on load;
what fails the check is moved aside with :func:`move_aside`, which says so in
one line on stderr, and is computed again.  :func:`locked` makes two processes that
ask for one entry compute it once; :class:`JsonStore` keeps the answers of served
models by key.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["file_sha256", "write_atomic", "move_aside", "locked", "JsonStore", "save_checkpoint", "read_checkpoint",
           "optimizer_tensors", "load_optimizer"]


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


@contextlib.contextmanager
def locked(folder: Path):
    """Hold an exclusive lock on ``folder`` (a sibling ``.lock`` file) while the block runs, so
    two processes that ask for the same entry (chapters executed in parallel) compute it once."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover - no advisory locks on this platform
        yield
        return
    with open(folder.with_suffix(".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class JsonStore:
    """JSON records by key, in ``folder/<key[:2]>/<key>.json``, each written whole
    (:func:`write_atomic`): two processes writing one key leave one of their records, never a
    mix; a record that cannot be read counts as missing (and is written again)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        try:
            record = json.loads(self.path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def put(self, key: str, record: dict) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(record, ensure_ascii=False, indent=1)
        write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


# ---------------------------------------------------------------- training checkpoints
def save_checkpoint(path: Path, tensors: dict, meta: dict) -> None:
    """Write the checkpoint atomically: the weights, then the JSON with their checksum."""
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    weights = path / "last.safetensors"
    write_atomic(weights, lambda tmp: save_file(
        {k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp)))
    meta = {**meta, "sha256": file_sha256(weights)}
    write_atomic(path / "last.json", lambda tmp: tmp.write_text(json.dumps(meta, indent=1)))


def read_checkpoint(path: Path, signature: dict) -> tuple[dict, dict] | None:
    """``(tensors, meta)`` of the checkpoint in ``path`` if it belongs to this run; None if there
    is none or it is for another configuration.  A checkpoint that cannot be read, or whose
    weights do not match its checksum, is moved aside (training then starts from scratch)."""
    from safetensors.torch import load_file

    if not (path / "last.json").is_file():
        return None
    try:
        meta = json.loads((path / "last.json").read_text())
        if meta["signature"] != json.loads(json.dumps(signature)):
            return None
        if file_sha256(path / "last.safetensors") != meta["sha256"]:
            raise ValueError("last.safetensors does not match the checksum in last.json")
        return load_file(str(path / "last.safetensors")), meta
    except Exception as err:  # noqa: BLE001 - any unreadable checkpoint is discarded
        move_aside(path, "the training checkpoint", f"{type(err).__name__}: {err}",
                   then="training from the first epoch")
        return None


def optimizer_tensors(opt: "torch.optim.Optimizer") -> tuple[dict, dict]:
    """An optimizer's state as flat tensors (``opt.<param>.<name>``) and the JSON that rebuilds it."""
    state = opt.state_dict()
    tensors = {f"opt.{i}.{k}": v for i, s in state["state"].items() for k, v in s.items()}
    return tensors, {"param_groups": state["param_groups"], "keys": sorted(tensors)}


def load_optimizer(opt: "torch.optim.Optimizer", tensors: dict, meta: dict) -> None:
    """Restore what :func:`optimizer_tensors` wrote into ``opt``."""
    state: dict = {}
    for key in meta["keys"]:
        _, i, name = key.split(".", 2)
        state.setdefault(int(i), {})[name] = tensors[key]
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
