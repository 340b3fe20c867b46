"""The software behind the numbers: package versions read from the environment,
the Python version, and the pinned assets.

Versions are read with :func:`importlib.metadata.version` when a chapter runs,
so the table printed in the book is the environment that produced its results,
never a list typed by hand.  A package that is not installed shows as
``"not installed"`` (for example the LLM extras on a machine without them).
"""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Iterable, Sequence

import pandas as pd

from ..assets import ASSETS, Asset

__all__ = ["NOT_INSTALLED", "PACKAGES", "package_version", "package_versions", "python_version", "versions_table",
           "split_pin", "assets_table"]

NOT_INSTALLED = "not installed"

#: (distribution name on PyPI, what this book uses it for), in the order the table shows them
PACKAGES: tuple[tuple[str, str], ...] = (
    ("torch", "tensors and autograd: LSTM, GPTRec, training, LLM inference"),
    ("numpy", "arrays: splits, ranks, metrics"),
    ("scipy", "sparse user-item matrices (ItemKNN, EASE), statistics"),
    ("pandas", "tidy tables of results"),
    ("matplotlib", "figures"),
    ("seaborn", "the house plotting style"),
    ("safetensors", "model weights in the experiment cache"),
    ("tqdm", "progress bars of long runs"),
    ("psutil", "peak memory (resident set size) on the CPU"),
    ("transformers", "loading and running the local LLM (Hugging Face causal LMs)"),
    ("gguf", "reading the pinned GGUF LLM file"),
    ("accelerate", "model loading for transformers"),
    ("peft", "LoRA adapters for fine-tuning the LLM"),
    ("sentence-transformers", "the sentence encoder of the text-embedding recommender"),
    ("papermill", "executing the chapters with parameters"),
    ("jupytext", "chapters written as MyST markdown"),
    ("ipykernel", "the Python kernel that executes the chapters"),
    ("ipywidgets", "progress bars of the model libraries inside that kernel"),
    ("jupyter-book", "building the web site"),
    ("myst-nb", "notebooks and glued values in the site"),
    ("sphinxcontrib-bibtex", "citations and the bibliography"),
    ("pytest", "unit tests"),
    ("hypothesis", "property-based unit tests"),
    ("nbval", "re-executing the published chapters in the tests"),
)


def package_versions() -> dict[str, str]:
    """``{distribution: version}`` of every package of :data:`PACKAGES` (what a results file
    records of the environment that produced it)."""
    return {name: package_version(name) for name, _ in PACKAGES}


def package_version(distribution: str) -> str:
    """The installed version of a distribution, or :data:`NOT_INSTALLED`."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return NOT_INSTALLED


def python_version() -> str:
    """``"3.11.7"``-style version of the running interpreter."""
    return platform.python_version()


def versions_table(packages: Iterable[tuple[str, str]] = PACKAGES) -> pd.DataFrame:
    """One row per package: its version in this environment and what the book uses it for."""
    rows = [{"package": name, "version": package_version(name), "used for": purpose}
            for name, purpose in packages]
    return pd.DataFrame(rows, columns=["package", "version", "used for"]).set_index("package")


def split_pin(requirement: str) -> tuple[str, str]:
    """``"recbole==1.2.1"`` -> ``("recbole", "1.2.1")``; anything but an exact pin is an error."""
    name, sep, pinned = requirement.partition("==")
    if not sep or not name.strip() or not pinned.strip() or any(c in pinned for c in "<>=!~,;*"):
        raise ValueError(f"{requirement!r} is not an exact pin 'name==version'")
    return name.strip(), pinned.strip()


def assets_table(assets: Sequence[Asset] | None = None) -> pd.DataFrame:
    """One row per pinned asset: the PyPI wheel and version it comes from, its files and licence."""
    rows = []
    for a in assets if assets is not None else ASSETS.values():
        wheel, pinned = split_pin(a.wheel)
        rows.append({"asset": a.name, "what": a.description, "PyPI wheel": wheel, "version": pinned,
                     "files": len(a.files), "licence": a.license})
    return pd.DataFrame(rows, columns=["asset", "what", "PyPI wheel", "version", "files",
                                       "licence"]).set_index("asset")
