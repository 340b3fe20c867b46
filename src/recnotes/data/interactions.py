"""The interactions container: who interacted with what, when, with which rating.

Internal ids are contiguous and deterministic: users ``0 .. n_users-1`` in
ascending order of their original id; items ``1 .. n_items`` in ascending order
of their original id, with item ``0`` reserved for padding (so a score tensor
over the catalogue has ``n_items + 1`` columns and column 0 is never a real
item).  The original row order is kept: it breaks ties between equal
timestamps in the chronological split.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["Interactions", "PAD"]

PAD = 0  #: the padding item id


@dataclass(frozen=True, eq=False)
class Interactions:
    """Interactions with contiguous internal ids (see the module docstring).

    ``item_meta`` is indexed by internal item id ``0 .. n_items`` (row 0 is
    padding) with columns ``item`` (original id), ``title``, ``year``,
    ``genres`` (tuple of str).
    """

    user: np.ndarray  # int64, internal user id per interaction
    item: np.ndarray  # int64, internal item id per interaction (>= 1)
    timestamp: np.ndarray  # int64
    rating: np.ndarray  # float32
    user_ids: np.ndarray  # original id of each internal user
    item_ids: np.ndarray  # original id of each internal item; item_ids[0] = -1 (padding)
    item_meta: pd.DataFrame
    name: str = "interactions"
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    # ------------------------------------------------------------------ build
    @classmethod
    def from_frame(cls, ratings: pd.DataFrame, items: pd.DataFrame | None = None,
                   name: str = "interactions") -> "Interactions":
        """Build from a frame with columns ``user``, ``item``, ``timestamp`` and
        optionally ``rating`` (original ids); ``items`` optionally gives
        ``item``, ``title``, ``year``, ``genres``."""
        missing = {"user", "item", "timestamp"} - set(ratings.columns)
        if missing:
            raise ValueError(f"ratings frame lacks column(s) {sorted(missing)}")
        if len(ratings) == 0:
            raise ValueError("no interactions: the ratings frame is empty")
        users_orig = ratings["user"].to_numpy()
        items_orig = ratings["item"].to_numpy()
        user_ids, user = np.unique(users_orig, return_inverse=True)
        item_ids, item = np.unique(items_orig, return_inverse=True)
        rating = (ratings["rating"].to_numpy(np.float32) if "rating" in ratings
                  else np.ones(len(ratings), np.float32))
        meta = pd.DataFrame({"item": np.concatenate([[-1], item_ids])})
        if items is not None and len(items):
            extra = items.drop_duplicates("item").set_index("item")
            for col in ("title", "year", "genres"):
                if col in extra:
                    meta[col] = meta["item"].map(extra[col]).to_numpy()
        if "title" not in meta:
            meta["title"] = [f"item {i}" for i in meta["item"]]
        meta["title"] = [t if isinstance(t, str) else f"item {i}" for t, i in zip(meta["title"], meta["item"])]
        meta.loc[0, "title"] = "<pad>"
        if "year" not in meta:
            meta["year"] = pd.array([None] * len(meta), dtype="Int64")
        else:
            meta["year"] = pd.array(meta["year"], dtype="Int64")
        if "genres" not in meta:
            meta["genres"] = [()] * len(meta)
        meta["genres"] = [g if isinstance(g, tuple) else () for g in meta["genres"]]
        return cls(
            user=user.astype(np.int64),
            item=item.astype(np.int64) + 1,
            timestamp=ratings["timestamp"].to_numpy().astype(np.int64),
            rating=rating,
            user_ids=np.asarray(user_ids),
            item_ids=np.concatenate([[-1], item_ids]).astype(np.asarray(item_ids).dtype),
            item_meta=meta,
            name=name,
        )

    # ------------------------------------------------------------- properties
    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        """Number of real items (the score width is ``n_items + 1``)."""
        return len(self.item_ids) - 1

    def __len__(self) -> int:
        return len(self.user)

    @property
    def density(self) -> float:
        """Share of the user x item matrix that is observed (distinct pairs)."""
        pairs = len(np.unique(self.user * (self.n_items + 1) + self.item))
        return pairs / (self.n_users * self.n_items)

    def __repr__(self) -> str:
        return (f"Interactions({self.name!r}: {len(self):,} interactions, "
                f"{self.n_users:,} users, {self.n_items:,} items)")

    # ---------------------------------------------------------------- views
    def to_frame(self, original_ids: bool = False) -> pd.DataFrame:
        """A tidy frame, one row per interaction, in the original order."""
        df = pd.DataFrame({"user": self.user, "item": self.item,
                           "timestamp": self.timestamp, "rating": self.rating})
        if original_ids:
            df["user"] = self.user_ids[self.user]
            df["item"] = self.item_ids[self.item]
        return df

    def user_counts(self) -> np.ndarray:
        """Interactions per internal user, shape ``[n_users]``."""
        return np.bincount(self.user, minlength=self.n_users)

    def item_counts(self) -> np.ndarray:
        """Interactions per internal item, shape ``[n_items + 1]`` (index 0 is padding, 0)."""
        return np.bincount(self.item, minlength=self.n_items + 1)

    def chronological_order(self) -> np.ndarray:
        """Indices that sort interactions by (user, timestamp, original row): stable on ties."""
        return np.lexsort((np.arange(len(self)), self.timestamp, self.user))

    def sequences(self) -> list[np.ndarray]:
        """Each user's items in chronological order (ties keep the original order)."""
        if "sequences" not in self._cache:
            order = self.chronological_order()
            bounds = np.cumsum(self.user_counts())[:-1]
            self._cache["sequences"] = np.split(self.item[order], bounds)
        return self._cache["sequences"]

    def title(self, item: int, with_year: bool = True) -> str:
        row = self.item_meta.iloc[int(item)]
        year = row["year"]
        return f"{row['title']} ({year})" if with_year and not pd.isna(year) else row["title"]

    def titles(self, items, with_year: bool = True) -> list[str]:
        return [self.title(i, with_year) for i in np.asarray(items).ravel()]

    # --------------------------------------------------------------- filters
    def subset(self, mask: np.ndarray, name: str | None = None) -> "Interactions":
        """Keep the interactions where ``mask`` is true, re-indexing users and items."""
        mask = np.asarray(mask, bool)
        if mask.shape != self.user.shape:
            raise ValueError(f"mask has shape {mask.shape}, expected {self.user.shape}")
        frame = self.to_frame(original_ids=True)[mask]
        items = self.item_meta.iloc[1:].copy()
        return Interactions.from_frame(frame, items, name=name or self.name)

    def select_users(self, users: np.ndarray) -> "Interactions":
        """The interactions of some users, renumbered ``0 .. len(users)-1`` in the given
        order; unlike :meth:`subset`, item ids and the catalogue stay as they are."""
        users = np.asarray(users, dtype=np.int64)
        new_id = np.full(self.n_users, -1, np.int64)
        new_id[users] = np.arange(len(users))
        keep = new_id[self.user] >= 0
        return Interactions(user=new_id[self.user[keep]], item=self.item[keep],
                            timestamp=self.timestamp[keep], rating=self.rating[keep],
                            user_ids=self.user_ids[users], item_ids=self.item_ids,
                            item_meta=self.item_meta, name=self.name)

    def filter(self, min_user: int = 1, min_item: int = 1, min_rating: float | None = None,
               iterate: bool = True) -> "Interactions":
        """Keep ratings >= ``min_rating``, then users with >= ``min_user`` and items
        with >= ``min_item`` interactions; with ``iterate`` repeat until both hold
        (a k-core)."""
        mask = np.ones(len(self), bool)
        if min_rating is not None:
            mask &= self.rating >= min_rating
        while True:
            uc = np.bincount(self.user[mask], minlength=self.n_users)
            ic = np.bincount(self.item[mask], minlength=self.n_items + 1)
            keep = mask & (uc[self.user] >= min_user) & (ic[self.item] >= min_item)
            if keep.sum() == mask.sum() or not iterate:
                mask = keep
                break
            mask = keep
        if not mask.any():
            raise ValueError(
                f"the filter (min_user={min_user}, min_item={min_item}, min_rating={min_rating}) "
                f"leaves no interactions")
        return self.subset(mask)
