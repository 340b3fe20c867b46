"""MovieLens loaders: the pinned RecBole copy of ML-100K, and GroupLens' own formats.

Every reader returns two tidy frames, which :class:`~recnotes.data.Interactions`
turns into the container the rest of recnotes uses:

* ``ratings``: columns ``user``, ``item``, ``rating``, ``timestamp`` (original ids,
  original row order kept: it is the tie-break of the chronological split);
* ``items``: columns ``item``, ``title``, ``year`` (nullable int), ``genres`` (tuple of str).

Offline, ``load_movielens("ml-100k")`` reads the pinned asset.  A ``path``
argument reads a folder in GroupLens' format (``u.data``/``u.item``,
``ratings.dat``/``movies.dat`` or ``ratings.csv``/``movies.csv``).  With
``source="grouplens"`` the zip is downloaded from GroupLens into the cache
(online only, for example on Colab).
"""

from __future__ import annotations

import re
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from .. import assets
from .interactions import Interactions

__all__ = [
    "DATASETS",
    "DataFormatError",
    "load_movielens",
    "read_recbole",
    "read_grouplens",
    "grouplens_format",
    "fetch_grouplens",
    "split_title_year",
]

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/{name}.zip"
DATASETS = ("ml-100k", "ml-1m", "ml-20m")

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)

_TITLE_YEAR = re.compile(r"^(.*?)\s*\((\d{4})\)\s*$")


class DataFormatError(ValueError):
    """A data file has a line that cannot be read; the message names the file and the line."""


def _bad_line(path: Path, row: int, header: int, encoding: str) -> str:
    """``"line N: <text>"`` of data row ``row`` (0-based, blank lines skipped as pandas does)."""
    seen = -1
    with open(path, encoding=encoding, errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if number <= header or not line.strip():
                continue
            seen += 1
            if seen == row:
                return f"line {number}: {line.rstrip()[:200]!r}"
    return f"data row {row + 1}"


def _read_numeric(path: Path, columns: dict[str, type], *, sep: str, header: int = 0,
                  names: list[str] | None = None, encoding: str = "utf-8") -> pd.DataFrame:
    """Read a delimited file whose ``columns`` must all be numbers (integers for ``int``
    columns); a line that is not raises :class:`DataFormatError` with the file and the line."""
    kwargs = dict(sep=sep, dtype=str, keep_default_na=False, encoding=encoding,
                  engine="python" if len(sep) > 1 else "c")
    if names is not None:
        kwargs.update(header=None, names=names)
    try:
        raw = pd.read_csv(path, **kwargs)
    except pd.errors.ParserError as err:
        match = re.search(r"line (\d+)", str(err))
        where = ""
        if match:
            number = int(match.group(1))
            with open(path, encoding=encoding, errors="replace") as handle:
                text = next((line for i, line in enumerate(handle, start=1) if i == number), "")
            where = f" at line {number}: {text.rstrip()[:200]!r}"
        raise DataFormatError(f"{path}: cannot read the file{where} ({str(err).strip()})") from None
    out = {}
    for name, kind in columns.items():
        key = next((c for c in raw.columns if str(c).split(":")[0] == name), name)
        if key not in raw.columns:
            raise DataFormatError(f"{path}: no column {name!r} (columns: {list(raw.columns)})")
        values = pd.to_numeric(raw[key].str.strip(), errors="coerce")
        numbers = values.to_numpy(dtype=float, na_value=np.nan)
        bad = ~np.isfinite(numbers)
        if kind is int:
            bad |= np.isfinite(numbers) & (numbers % 1 != 0)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataFormatError(f"{path}: {_bad_line(path, row, header, encoding)} has no valid "
                                  f"{name!r} (expected {'an integer' if kind is int else 'a number'})")
        out[key] = values.astype(np.int64 if kind is int else np.float64)
    return pd.DataFrame(out)


def split_title_year(raw: str) -> tuple[str, int | None]:
    """``"Toy Story (1995)"`` -> ``("Toy Story", 1995)``; no year -> ``(raw, None)``."""
    m = _TITLE_YEAR.match(raw.strip())
    if m:
        return m.group(1), int(m.group(2))
    return raw.strip(), None


def _items_frame(item, title, year, genres) -> pd.DataFrame:
    return pd.DataFrame({
        "item": np.asarray(item, dtype=np.int64),
        "title": list(title),
        "year": pd.array(list(year), dtype="Int64"),
        "genres": [tuple(g) for g in genres],
    })


def read_recbole(folder: str | Path, name: str = "ml-100k") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read RecBole atomic files ``<name>.inter`` and ``<name>.item``."""
    folder = Path(folder)
    inter = _read_numeric(folder / f"{name}.inter", {"user_id": int, "item_id": int, "rating": float,
                                                     "timestamp": int}, sep="\t", header=1)
    inter.columns = [c.split(":")[0] for c in inter.columns]
    ratings = pd.DataFrame({
        "user": inter["user_id"].astype(np.int64),
        "item": inter["item_id"].astype(np.int64),
        "rating": inter["rating"].astype(np.float32),
        "timestamp": inter["timestamp"].astype(np.int64),
    })
    raw = pd.read_csv(folder / f"{name}.item", sep="\t", keep_default_na=False, dtype=str)
    raw.columns = [c.split(":")[0] for c in raw.columns]
    years = [int(y) if y.strip().isdigit() else None for y in raw["release_year"]]
    genres = [tuple(g.split()) if g else () for g in raw["class"]]
    items = _items_frame(raw["item_id"].astype(np.int64), raw["movie_title"], years, genres)
    return ratings, items


def _read_100k(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    cols = {"user": int, "item": int, "rating": float, "timestamp": int}
    ratings = _read_numeric(folder / "u.data", cols, sep="\t", names=list(cols))
    raw = pd.read_csv(folder / "u.item", sep="|", header=None, encoding="latin-1",
                      keep_default_na=False, dtype=str)
    titles, years = zip(*(split_title_year(t) for t in raw[1]))
    # Items without a year in the title (GroupLens leaves a few blank): use the release date.
    years = [y if y is not None else (int(d[-4:]) if d[-4:].isdigit() else None)
             for y, d in zip(years, raw[2])]
    flags = raw.iloc[:, 5:5 + len(ML100K_GENRES)].astype(int).to_numpy()
    genres = [tuple(g for g, f in zip(ML100K_GENRES, row) if f) for row in flags]
    return ratings, _items_frame(raw[0].astype(np.int64), titles, years, genres)


def _read_1m(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    cols = {"user": int, "item": int, "rating": float, "timestamp": int}
    ratings = _read_numeric(folder / "ratings.dat", cols, sep="::", names=list(cols))
    raw = pd.read_csv(folder / "movies.dat", sep="::", engine="python", header=None,
                      encoding="latin-1", names=["item", "title", "genres"], dtype=str,
                      keep_default_na=False)
    titles, years = zip(*(split_title_year(t) for t in raw["title"]))
    genres = [tuple(g.split("|")) if g else () for g in raw["genres"]]
    return ratings, _items_frame(raw["item"].astype(np.int64), titles, years, genres)


def _read_20m(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    ratings = _read_numeric(folder / "ratings.csv", {"userId": int, "movieId": int, "rating": float,
                                                     "timestamp": int}, sep=",", header=1)
    ratings = ratings.rename(columns={"userId": "user", "movieId": "item"})
    raw = pd.read_csv(folder / "movies.csv", dtype=str, keep_default_na=False)
    titles, years = zip(*(split_title_year(t) for t in raw["title"]))
    genres = [() if g in ("", "(no genres listed)") else tuple(g.split("|")) for g in raw["genres"]]
    return ratings, _items_frame(raw["movieId"].astype(np.int64), titles, years, genres)


def grouplens_format(folder: str | Path) -> str:
    """Which GroupLens format a folder holds, by its file names: ``"ml-100k"`` (``u.data``,
    ``u.item``), ``"ml-1m"`` (``ratings.dat``, ``movies.dat``) or ``"ml-20m"`` (``ratings.csv``,
    ``movies.csv``, also the format of ML-25M and ``ml-latest``)."""
    folder = Path(folder)
    for name, files in (("ml-100k", ("u.data", "u.item")), ("ml-1m", ("ratings.dat", "movies.dat")),
                        ("ml-20m", ("ratings.csv", "movies.csv"))):
        if all((folder / f).is_file() for f in files):
            return name
    raise ValueError(f"{folder} is not a MovieLens folder: expected u.data + u.item (100K), "
                     f"ratings.dat + movies.dat (1M) or ratings.csv + movies.csv (20M)")


def read_grouplens(folder: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read a GroupLens folder, recognising the format by its file names."""
    folder = Path(folder)
    if (folder / "u.data").is_file() and (folder / "u.item").is_file():
        ratings, items = _read_100k(folder)
    elif (folder / "ratings.dat").is_file() and (folder / "movies.dat").is_file():
        ratings, items = _read_1m(folder)
    elif (folder / "ratings.csv").is_file() and (folder / "movies.csv").is_file():
        ratings, items = _read_20m(folder)
    else:
        raise ValueError(
            f"{folder} is not a MovieLens folder: expected u.data + u.item (100K), "
            f"ratings.dat + movies.dat (1M) or ratings.csv + movies.csv (20M)"
        )
    ratings = ratings.astype({"user": np.int64, "item": np.int64, "rating": np.float32,
                              "timestamp": np.int64})
    return ratings[["user", "item", "rating", "timestamp"]], items


def fetch_grouplens(name: str, timeout: float = 60.0) -> Path:
    """Download and extract GroupLens' zip of ``name`` into the cache (needs network)."""
    if name not in DATASETS:
        raise ValueError(f"unknown MovieLens dataset {name!r}; choose one of {DATASETS}")
    root = assets.cache_dir() / "grouplens"
    folder = root / name
    if folder.is_dir() and any(folder.iterdir()):
        return folder
    root.mkdir(parents=True, exist_ok=True)
    zpath = root / f"{name}.zip"
    url = GROUPLENS_URL.format(name=name)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(zpath, "wb") as out:
            while block := resp.read(1 << 20):
                out.write(block)
    except OSError as err:
        zpath.unlink(missing_ok=True)
        raise assets.AssetError(
            f"could not download {url} ({err}). This needs network (for example on Colab); "
            f"offline, use load_movielens('ml-100k') (the pinned copy) or pass path= a folder "
            f"with GroupLens' files."
        ) from None
    with zipfile.ZipFile(zpath) as zf:
        zf.extractall(root)
    zpath.unlink()
    if not folder.is_dir():
        raise assets.AssetError(f"{url} did not contain a folder {name}/")
    return folder


def load_movielens(name: str = "ml-100k", path: str | Path | None = None,
                   source: str = "auto") -> Interactions:
    """Load a MovieLens dataset as :class:`Interactions`.

    ``source``: ``"auto"`` (the pinned asset for ML-100K, GroupLens otherwise),
    ``"pinned"`` or ``"grouplens"``.  ``path`` reads a local GroupLens folder.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown MovieLens dataset {name!r}; choose one of {DATASETS}")
    if source not in ("auto", "pinned", "grouplens"):
        raise ValueError(f"source must be 'auto', 'pinned' or 'grouplens', not {source!r}")
    if path is not None:
        ratings, items = read_grouplens(path)
    elif name == "ml-100k" and source in ("auto", "pinned"):
        ratings, items = read_recbole(assets.fetch("ml-100k", quiet=True), "ml-100k")
    elif source == "pinned":
        raise ValueError(f"only ml-100k has a pinned offline copy, not {name!r}")
    else:
        ratings, items = read_grouplens(fetch_grouplens(name))
    return Interactions.from_frame(ratings, items, name=name)
