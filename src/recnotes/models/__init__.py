"""The recommenders: classic baselines, the article's LSTM and GPTRec, and a cold-start baseline.

Every model implements :class:`~recnotes.models.base.Recommender`:
``fit(split)`` then ``score(histories) -> [batch, n_items + 1]``.
"""

from .base import NotFittedError, Recommender, SequenceRecommender
from .ease import EASE
from .genre_popularity import GenreYearPopularity
from .gptrec import GPTRec
from .itemknn import ItemKNN
from .lstm import LSTM
from .popularity import Popularity
from .random import Random

__all__ = ["Recommender", "SequenceRecommender", "NotFittedError", "Popularity", "Random",
           "ItemKNN", "EASE", "LSTM", "GPTRec", "GenreYearPopularity"]
