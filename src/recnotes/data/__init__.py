"""Data: the interactions container, MovieLens and Amazon Reviews loaders, and splits."""

from .amazon import AmazonUnavailable, load_amazon_reviews
from .interactions import PAD, Interactions
from .movielens import load_movielens
from .splits import Split, leave_one_out, pad_sequences, random_split

__all__ = ["PAD", "Interactions", "load_movielens", "load_amazon_reviews", "AmazonUnavailable", "Split",
           "leave_one_out", "random_split", "pad_sequences"]
