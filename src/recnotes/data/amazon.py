"""Amazon Reviews 2023 (McAuley Lab): reviews as interactions, another domain than films.

The dataset is published per category as gzip JSON-lines files, one review
per line with the fields ``rating``, ``title``, ``text``, ``images``,
``asin``, ``parent_asin``, ``user_id``, ``timestamp`` (milliseconds since
1970), ``helpful_vote`` and ``verified_purchase``, and one item metadata file
per category (``meta_<Category>.jsonl.gz``: ``parent_asin``, ``title``,
``main_category``, ``categories``, ...).  A review is read as an interaction
of ``user_id`` with ``parent_asin`` (the product, all its variants together)
at ``timestamp``.

:func:`load_amazon_reviews` returns the same
:class:`~recnotes.data.Interactions` as the MovieLens loader, so
:func:`~recnotes.data.leave_one_out` and every model work unchanged.  It reads
local files or downloads a category into the cache (``cache_dir()/amazon-2023``);
without network the download raises :class:`AmazonUnavailable` with a short
message, never a traceback from deep inside ``urllib``.
"""

from __future__ import annotations

import gzip
import http.client
import json
import re
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

from .. import assets
from .interactions import Interactions

__all__ = ["AmazonUnavailable", "REVIEWS_URL", "META_URL", "read_reviews", "read_meta", "fetch_amazon",
           "load_amazon_reviews", "kcore"]

_BASE = "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_2023/raw"
REVIEWS_URL = _BASE + "/review_categories/{category}.jsonl.gz"
META_URL = _BASE + "/meta_categories/meta_{category}.jsonl.gz"
_CATEGORY = re.compile(r"^[A-Za-z0-9_]+$")


class AmazonUnavailable(assets.AssetError):
    """The Amazon Reviews files cannot be reached (no network, or the server refused)."""


def _open_lines(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}, line {number}: not a JSON object ({err.msg})") from None


def read_reviews(path: str | Path, item_key: str = "parent_asin") -> pd.DataFrame:
    """Read a reviews file (``.jsonl`` or ``.jsonl.gz``) into a frame with columns ``user``,
    ``item`` (the ``item_key`` field), ``rating``, ``timestamp`` (ms), ``verified`` and
    ``helpful_vote``, in file order."""
    if item_key not in ("parent_asin", "asin"):
        raise ValueError(f"item_key must be 'parent_asin' or 'asin', not {item_key!r}")
    path = Path(path)
    rows = []
    for number, rec in enumerate(_open_lines(path), 1):
        missing = {"user_id", item_key, "timestamp", "rating"} - set(rec)
        if missing:
            raise ValueError(f"{path}, review {number}: missing field(s) {sorted(missing)}; is this an "
                             f"Amazon Reviews 2023 reviews file?")
        rows.append((rec["user_id"], rec[item_key], float(rec["rating"]), int(rec["timestamp"]),
                     bool(rec.get("verified_purchase", False)), int(rec.get("helpful_vote") or 0)))
    frame = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp", "verified", "helpful_vote"])
    return frame.astype({"user": str, "item": str, "rating": np.float32, "timestamp": np.int64})


def read_meta(path: str | Path) -> pd.DataFrame:
    """Read an item metadata file into ``item`` (``parent_asin``), ``title``, ``year`` (empty)
    and ``genres`` (the ``categories`` path, or else ``(main_category,)``)."""
    rows = []
    for rec in _open_lines(Path(path)):
        if "parent_asin" not in rec:
            raise ValueError(f"{path}: an item without 'parent_asin'; is this a meta_<Category> file?")
        cats = tuple(c for c in (rec.get("categories") or []) if isinstance(c, str) and c)
        main = rec.get("main_category")
        title = rec.get("title")
        rows.append((rec["parent_asin"], title.strip() if isinstance(title, str) and title.strip() else None,
                     cats or ((main,) if isinstance(main, str) and main else ())))
    frame = pd.DataFrame(rows, columns=["item", "title", "genres"]).drop_duplicates("item")
    frame["year"] = pd.array([None] * len(frame), dtype="Int64")
    return frame[["item", "title", "year", "genres"]]


def kcore(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """Keep interactions until every user and every item has at least ``k`` of them
    (repeatedly dropping the users and items below ``k``; the result is the largest such
    subset, and does not depend on the order of the removals)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, not {k}")
    while True:
        users = frame["user"].map(frame["user"].value_counts())
        items = frame["item"].map(frame["item"].value_counts())
        keep = (users >= k) & (items >= k)
        if keep.all():
            return frame
        frame = frame[keep.to_numpy()]


def _download(url: str, target: Path, timeout: float) -> Path:
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(partial, "wb") as out:
            while block := resp.read(1 << 20):
                out.write(block)
    except (OSError, http.client.HTTPException) as err:  # no network, refused, cut off
        partial.unlink(missing_ok=True)
        reason = getattr(err, "reason", None) or err
        raise AmazonUnavailable(
            f"Amazon Reviews 2023 is not reachable ({url}: {reason}). It needs network (for example "
            f"on Colab); offline, pass a local path to a <Category>.jsonl.gz file instead.") from None
    partial.rename(target)
    return target


def fetch_amazon(category: str, meta: bool = True, timeout: float = 60.0) -> tuple[Path, Path | None]:
    """Download a category's reviews (and its item metadata) into ``cache_dir()/amazon-2023``
    once; returns the local paths.  Raises :class:`AmazonUnavailable` offline."""
    if not _CATEGORY.match(category):
        raise ValueError(f"not an Amazon Reviews 2023 category name: {category!r} (e.g. 'All_Beauty')")
    folder = assets.cache_dir() / "amazon-2023"
    reviews = _download(REVIEWS_URL.format(category=category), folder / f"{category}.jsonl.gz", timeout)
    items = (_download(META_URL.format(category=category), folder / f"meta_{category}.jsonl.gz", timeout)
             if meta else None)
    return reviews, items


def _is_url(x) -> bool:
    return isinstance(x, str) and x.startswith(("http://", "https://"))


def _resolve(source: str | Path, meta: str | Path | bool | None, timeout: float) -> tuple[Path, Path | None]:
    """Local paths of the reviews and (optional) metadata files, downloading what is a URL or a
    category name."""
    folder = assets.cache_dir() / "amazon-2023"
    text = str(source)
    if _is_url(text):
        reviews = _download(text, folder / text.rstrip("/").rsplit("/", 1)[-1], timeout)
    elif Path(text).is_file():
        reviews = Path(text)
    elif _CATEGORY.match(text):
        reviews, fetched = fetch_amazon(text, meta=meta is None or meta is True, timeout=timeout)
        if meta is None or meta is True:
            return reviews, fetched
    else:
        raise FileNotFoundError(f"no reviews file {text}")
    if _is_url(meta):
        return reviews, _download(str(meta), folder / str(meta).rstrip("/").rsplit("/", 1)[-1], timeout)
    if isinstance(meta, (str, Path)):
        if not Path(meta).is_file():
            raise FileNotFoundError(f"no item metadata file {meta}")
        return reviews, Path(meta)
    return reviews, None


def load_amazon_reviews(path_or_url: str | Path, meta: str | Path | bool | None = None, *, k_core: int = 5,
                        min_rating: float | None = None, item_key: str = "parent_asin",
                        timeout: float = 60.0) -> Interactions:
    """Load Amazon Reviews 2023 as :class:`Interactions`.

    ``path_or_url``: a local ``<Category>.jsonl(.gz)`` file, its URL, or a category name such as
    ``"All_Beauty"`` (downloaded into the cache, with its metadata unless ``meta=False``).
    ``meta``: a metadata file (path or URL) for the item titles; without it items have no titles.

    Reviews with ``rating < min_rating`` are dropped; a user's repeated reviews of the same item
    count once (the earliest review is the interaction); the rest is reduced to its
    ``k_core`` (every user and item with at least ``k_core`` interactions; 1 keeps everything).
    Rows are ordered by time (stable on ties), timestamps stay in milliseconds, and items
    without a metadata title are called ``"item <asin>"``.
    """
    reviews_path, meta_path = _resolve(path_or_url, meta, timeout)
    frame = read_reviews(reviews_path, item_key=item_key)
    if len(frame) == 0:
        raise ValueError(f"{reviews_path} holds no reviews")
    if min_rating is not None:
        frame = frame[frame["rating"] >= min_rating]
    frame = frame.sort_values("timestamp", kind="stable")
    frame = frame.drop_duplicates(["user", "item"], keep="first")
    frame = kcore(frame, k_core)
    if len(frame) == 0:
        raise ValueError(f"the {k_core}-core of {reviews_path.name} is empty: use a larger category or a "
                         f"smaller k_core")
    items = read_meta(meta_path) if meta_path is not None else None
    name = re.sub(r"\.jsonl(\.gz)?$", "", reviews_path.name)
    return Interactions.from_frame(frame.reset_index(drop=True), items, name=f"amazon-{name}")
