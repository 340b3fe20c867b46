"""The committed long-run records (``book/longrun``): where they are, their models' names, and
how to read them.  :mod:`recnotes.longrun` writes them; the experiment cache
(:mod:`recnotes.llm_experiments`) and chapter 6 read them.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["ROOT", "RECORD_DIR", "SIZES", "MODEL_NAMES", "record_path", "adapters_dir", "read_record"]

ROOT = Path(__file__).resolve().parents[2]
#: where the records live (in the repository; a reader's copy of the book has them too)
RECORD_DIR = Path("book") / "longrun"


def _root() -> Path:
    """The checkout whose ``book/longrun`` holds the records: this package's, or (an installed
    copy, as on Colab) the one the chapter runs in (its ``book/`` folder or the root)."""
    for root in (ROOT, Path.cwd().parent, Path.cwd()):
        if (root / RECORD_DIR).is_dir():
            return root
    return ROOT


#: a second pinned size, fine-tuned with chapter 6's in-budget recipe unchanged (LoRAConfig's
#: defaults: 8,000 targets, the same rank, blocks, window and learning rate): its record's name
#: and the model.  The run is longer than ``make book`` can hold (the larger vocabulary costs
#: most), so it is a record too, re-derived by chapter 6.
SIZES = {"gemma3-270m": "gemma3-270m-gguf"}


def record_path(name: str, root: Path | None = None) -> Path:
    return (root or _root()) / RECORD_DIR / f"{_stem(name)}.json"


def adapters_dir(name: str, root: Path | None = None) -> Path:
    return (root or _root()) / RECORD_DIR / _stem(name)


def _stem(name: str) -> str:
    return name if name in SIZES else f"lora-{name}"


#: the models' names in the results (the chosen settings' final adapters are the ones committed)
MODEL_NAMES = {"chosen": "LLMRanker[LoRA whole pass,list]",
               "book": "LLMRanker[LoRA whole pass with the book's settings,list]"}


def read_record(name: str, root: Path | None = None) -> dict:
    path = record_path(name, root)
    if not path.is_file():
        raise FileNotFoundError(f"no long-run record {path}; run: python -m recnotes.longrun --settings {name}")
    return json.loads(path.read_text())
