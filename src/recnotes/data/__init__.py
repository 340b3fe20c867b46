"""Data: the interactions container, MovieLens loaders and splits."""

from .interactions import PAD, Interactions
from .movielens import load_movielens
from .splits import Split, leave_one_out, pad_sequences, random_split

__all__ = ["PAD", "Interactions", "load_movielens", "Split", "leave_one_out", "random_split",
           "pad_sequences"]
