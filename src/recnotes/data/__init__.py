"""Data: the interactions container, MovieLens loaders and splits."""

from .interactions import PAD, Interactions
from .movielens import load_movielens

__all__ = ["PAD", "Interactions", "load_movielens"]
