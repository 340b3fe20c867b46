"""recnotes: generative pre-trained models and LLMs as recommenders, measured.

The package behind the recnotes book: pinned assets, MovieLens loaders, the
evaluation protocols, the models, and the house style of the book's tables
and plots.
"""

__version__ = "0.1.0"
