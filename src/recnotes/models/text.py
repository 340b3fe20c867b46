"""Text embeddings of items: a pretrained sentence encoder over "title (year): genres".

Three uses in the book:

* :class:`TextEmbedding`, a zero-shot content recommender: a user is the
  recency-weighted mean of the vectors of their history items, and an item's
  score is its cosine similarity with that user vector.  It needs no training
  interactions, so it scores items never seen in training (cold start).
* :func:`projected_item_embeddings`: the item vectors projected (PCA) to a
  model's width and scaled to its initialisation, to start GPTRec's item
  embeddings from text instead of noise.
* :func:`encode_items` itself, for nearest-neighbour tours of the catalogue.

Offline the encoder is the pinned all-MiniLM-L6-v2 asset (loaded with
``sentence-transformers``); online any model id.  Item vectors are cached on
disk under ``recnotes.assets.cache_dir()/text-embeddings/``, keyed by the model
and a hash of the texts.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd
import torch

from .. import assets
from ..device import get_device
from ..progress import hf_progress
from .base import Recommender, check_histories

if TYPE_CHECKING:  # pragma: no cover
    from ..data.splits import Split

__all__ = ["DEFAULT_ENCODER", "item_text", "item_texts", "load_encoder", "encode_items",
           "recency_weights", "TextEmbedding", "projected_item_embeddings"]

DEFAULT_ENCODER = "all-minilm-l6-v2"  #: the pinned offline encoder (an asset name)


def item_text(title: str, year: Any = None, genres: Sequence[str] = ()) -> str:
    """``"Toy Story (1995): Animation, Children's, Comedy"`` (year and genres when known)."""
    text = title if year is None or pd.isna(year) else f"{title} ({int(year)})"
    genres = [g for g in genres if g and g != "unknown"]
    return f"{text}: {', '.join(genres)}" if genres else text


def item_texts(item_meta: pd.DataFrame) -> list[str]:
    """One text per internal item id (row 0, the padding item, is ``""``)."""
    texts = [item_text(t, y, g) for t, y, g in
             zip(item_meta["title"], item_meta["year"], item_meta["genres"])]
    texts[0] = ""
    return texts


def load_encoder(model: str | Path | None = None, device: str | torch.device | None = None,
                 online: bool | None = None) -> Any:
    """A ``SentenceTransformer``: the pinned MiniLM by default, else a folder or model id.

    Offline (the default; ``online=True`` or ``RECNOTES_ONLINE=1`` to download)
    only local files are read, and a model that is not cached raises a
    ``RuntimeError`` saying what to do.
    """
    from sentence_transformers import SentenceTransformer

    if online is None:
        online = os.environ.get("RECNOTES_ONLINE", "") in ("1", "true", "yes")
    device = get_device(device)
    if model is None or str(model) == DEFAULT_ENCODER:
        source, local_only = str(assets.fetch(DEFAULT_ENCODER, quiet=True)), True
    else:
        source, local_only = str(model), not online
    try:
        with hf_progress():
            encoder = SentenceTransformer(source, device=str(device), local_files_only=local_only)
    except (OSError, ValueError) as err:
        raise RuntimeError(
            f"sentence encoder {str(model)!r} is not available offline. Pass online=True (or set "
            f"RECNOTES_ONLINE=1) where the internet is reachable to download it once, pass a "
            f"local folder, or use the pinned default (model=None).") from err
    encoder.recnotes_name = ("all-MiniLM-L6-v2" if source != str(model)
                             else Path(str(model)).name if Path(str(model)).is_dir() else str(model))
    return encoder


def encode_items(item_meta: pd.DataFrame, encoder: Any = None, batch_size: int = 64,
                 cache: bool = True) -> np.ndarray:
    """Unit-norm text vectors ``[n_items + 1, d]`` (float32; row 0 = padding = zeros).

    Cached on disk when the encoder came from :func:`load_encoder` (its name keys the cache).
    """
    texts = item_texts(item_meta)
    encoder = encoder if encoder is not None else load_encoder()
    name = getattr(encoder, "recnotes_name", None)
    cache = cache and name is not None  # an encoder not from load_encoder has no stable key
    digest = hashlib.sha256("\n".join([str(name), *texts]).encode("utf-8")).hexdigest()[:24]
    path = assets.cache_dir() / "text-embeddings" / f"{digest}.npy"
    if cache and path.is_file():
        return np.load(path)
    vecs = encoder.encode(texts[1:], batch_size=batch_size, normalize_embeddings=True,
                          convert_to_numpy=True, show_progress_bar=False)
    out = np.zeros((len(texts), vecs.shape[1]), np.float32)
    out[1:] = vecs
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".part.npy")
        np.save(tmp, out)
        os.replace(tmp, path)
    return out


def recency_weights(length: int, half_life: float | None) -> np.ndarray:
    """Weights of a chronological history, most recent = 1, halving every ``half_life``
    items back (``None``: all equal)."""
    if half_life is None:
        return np.ones(length)
    if half_life <= 0:
        raise ValueError(f"half_life must be positive or None, got {half_life}")
    age = np.arange(length - 1, -1, -1, dtype=float)
    return 0.5 ** (age / half_life)


class TextEmbedding(Recommender):
    """Zero-shot content recommender on item text vectors (see the module docstring).

    ``item_vectors`` is ``[n_items + 1, d]`` (row 0 padding), e.g. from
    :func:`encode_items`; ``max_history`` caps how many recent items form the user.
    """

    name = "TextEmbedding"

    def __init__(self, item_vectors: np.ndarray, half_life: float | None = 5.0,
                 max_history: int | None = 50) -> None:
        vecs = np.asarray(item_vectors, dtype=np.float32)
        if vecs.ndim != 2:
            raise ValueError(f"item_vectors must be 2-D [n_items + 1, d], got shape {vecs.shape}")
        recency_weights(1, half_life)  # validates half_life
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        self.vectors = torch.from_numpy(np.where(norms > 0, vecs / np.maximum(norms, 1e-12), 0.0))
        self.n_items = len(vecs) - 1
        self.half_life, self.max_history = half_life, max_history

    @classmethod
    def from_items(cls, item_meta: pd.DataFrame, encoder: Any = None, **kwargs: Any) -> "TextEmbedding":
        """Encode ``item_meta`` (see :func:`encode_items`) and build the recommender."""
        return cls(encode_items(item_meta, encoder), **kwargs)

    def fit(self, split: "Split | None" = None) -> "TextEmbedding":
        """Zero-shot: nothing is learned; only checks the catalogue size matches."""
        if split is not None and split.n_items != self.n_items:
            raise ValueError(f"the item vectors cover {self.n_items} items, the split {split.n_items}")
        return self

    def user_vectors(self, histories: Sequence[np.ndarray]) -> torch.Tensor:
        """``[b, d]``: recency-weighted mean of each history's item vectors, unit norm
        (zeros for an empty history)."""
        hs = check_histories(histories, self.n_items)
        out = torch.zeros((len(hs), self.vectors.shape[1]), dtype=torch.float32)
        for row, h in enumerate(hs):
            if self.max_history is not None:
                h = h[-self.max_history:]
            if len(h) == 0:
                continue
            w = torch.from_numpy(recency_weights(len(h), self.half_life)).float()
            u = (w[:, None] * self.vectors[torch.from_numpy(h)]).sum(0) / w.sum()
            out[row] = u / u.norm().clamp_min(1e-12)
        return out

    def score(self, histories: Sequence[np.ndarray]) -> torch.Tensor:
        """Cosine similarity of every item with each user vector ``[b, n_items + 1]``;
        column 0 (padding) is ``-inf``."""
        scores = self.user_vectors(histories) @ self.vectors.T
        scores[:, 0] = float("-inf")
        return scores


def projected_item_embeddings(item_vectors: np.ndarray, dim: int, std: float = 0.02,
                              seed: int = 0) -> torch.Tensor:
    """Item vectors projected to ``dim`` by PCA (random orthogonal directions fill any
    width beyond the data's rank), scaled to standard deviation ``std``; row 0 stays zero.

    Meant to initialise a model's item embedding (``weight.copy_(...)``) from text.
    """
    vecs = np.asarray(item_vectors, dtype=np.float64)[1:]
    if dim < 1:
        raise ValueError(f"dim must be positive, got {dim}")
    centred = vecs - vecs.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    basis = vt[:dim].T  # [d, <=dim]
    proj = centred @ basis
    if proj.shape[1] < dim:  # wider than the data: pad with seeded noise of the same scale
        rng = np.random.default_rng(seed)
        proj = np.hstack([proj, rng.normal(size=(len(proj), dim - proj.shape[1])) * proj.std()])
    proj *= std / max(proj.std(), 1e-12)
    out = np.zeros((len(vecs) + 1, dim), np.float32)
    out[1:] = proj
    return torch.from_numpy(out)
