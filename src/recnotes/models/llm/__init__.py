"""Language models as zero-shot recommenders.

* :mod:`.interface`: what a backend is (:class:`LLMBackend`, its usage counters);
* :mod:`.backends`: local Hugging Face causal LMs (offline default: the pinned
  SmolLM2-135M-Instruct GGUF); :mod:`.api`: OpenAI-compatible chat servers;
  :mod:`.served`: OpenAI-compatible completion servers (vLLM, SGLang) scored by
  likelihood; :mod:`.loading`: :func:`load_backend`, one spec for all three;
* :mod:`.likelihood`: candidate log-likelihoods with a shared-prefix KV cache;
* :mod:`.prompts`: the LLMRank-style templates and the list-wise answer parser;
* :mod:`.ranker`: :class:`LLMRanker`, the ``score_candidates`` model;
* :mod:`.probes`: position, popularity and watched-item bias probes.
"""

from .api import OpenAIBackend, Secret
from .backends import DEFAULT_MODEL, HFBackend
from .interface import Completion, LLMBackend, LLMBackendError, Usage
from .loading import load_backend
from .served import CompletionsBackend
from .probes import (PopularityBias, WatchedFirst, popularity_bias, position_bias, position_summary,
                     top_agreement, train_popularity, watched_first, watched_first_rate)
from .prompts import TEMPLATES, ParsedRanking, build_messages, parse_ranking, render
from .ranker import METHODS, LLMRanker, RankerStats, item_titles

__all__ = [
    "DEFAULT_MODEL", "Completion", "HFBackend", "LLMBackend", "LLMBackendError", "Usage",
    "load_backend", "OpenAIBackend", "CompletionsBackend", "Secret", "TEMPLATES", "METHODS", "ParsedRanking",
    "build_messages", "parse_ranking", "render", "LLMRanker", "RankerStats", "item_titles",
    "PopularityBias", "WatchedFirst", "popularity_bias", "position_bias", "position_summary",
    "train_popularity", "watched_first", "top_agreement", "watched_first_rate",
]
