"""Experiments: one ``Config`` dataclass per model, and a cached run.

A config holds every choice of an experiment (hyper-parameters, ``seed``,
``profile``) with the defaults tuned on ML-100K's validation split.  ``run``
builds the data and the model, trains it, and stores a trained neural model
under ``cache_dir()/experiments/<key>/`` (weights as safetensors, config and
training history as JSON), keyed by the config, a fingerprint of the data and
one of the source of the code that trains it, so a chapter that asks for the
same model loads it instead of training it again.  Classic models fit in seconds and are refitted.

Entries are written atomically (a temporary file, then a rename; ``run.json``
last, with the SHA-256 of the weights) and verified when loaded: an entry that
cannot be read or does not match its checksum is moved aside (to
``<key>.broken-<time>``), named in one line on stderr, and trained again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field, fields, make_dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file


from . import __version__
from .assets import cache_dir
from .data import load_movielens
from .data.movielens import grouplens_format
from .data.splits import Split, leave_one_out
from .models import EASE, GPTRec, ItemKNN, LSTM, Popularity, Random, Recommender
from .models.base import SequenceRecommender
from .profiles import get_profile, resolve_profile
from .safeio import file_sha256, locked, move_aside, write_atomic
from .models.training import TrainConfig

__all__ = ["ExperimentConfig", "PopularityConfig", "RandomConfig", "ItemKNNConfig", "EASEConfig",
           "LSTMConfig", "GPTRecConfig", "Run", "run", "load_split", "dataset_of", "data_fingerprint",
           "experiment_key", "producing_modules", "CONFIGS"]


@dataclass(frozen=True)
class ExperimentConfig:
    """What every experiment has: the dataset, a seed and the profile."""

    dataset: str = "ml-100k"
    seed: int = 0
    profile: str = "full"

    def build(self) -> Recommender:
        """A fresh, unfitted model."""
        raise NotImplementedError


@dataclass(frozen=True)
class PopularityConfig(ExperimentConfig):
    def build(self) -> Recommender:
        return Popularity()


@dataclass(frozen=True)
class RandomConfig(ExperimentConfig):
    def build(self) -> Recommender:
        return Random(seed=self.seed)


@dataclass(frozen=True)
class ItemKNNConfig(ExperimentConfig):
    k: int = 10  # the winner of python -m recnotes.tune ItemKNN (book/tuning/ItemKNN.json)
    shrink: float = 0.0

    def build(self) -> Recommender:
        return ItemKNN(k=self.k, shrink=self.shrink)


@dataclass(frozen=True)
class EASEConfig(ExperimentConfig):
    l2: float = 71.9  # the winner of python -m recnotes.tune EASE (book/tuning/EASE.json)

    def build(self) -> Recommender:
        return EASE(l2=self.l2)


#: the trainer's settings a neural config carries, written once, in :class:`TrainConfig` (names,
#: types, defaults); ``grad_clip`` stays the trainer's fixed value, and the config's own ``seed``
#: seeds the run
TRAINING_FIELDS = tuple(f.name for f in fields(TrainConfig) if f.name not in ("grad_clip", "seed"))


@dataclass(frozen=True)
class _Neural(ExperimentConfig):
    def train_config(self) -> TrainConfig:
        """The trainer's settings; the profile caps the number of epochs."""
        values = {name: getattr(self, name) for name in TRAINING_FIELDS}
        values["max_epochs"] = min(self.max_epochs, get_profile(self.profile).max_epochs)
        return TrainConfig(**values, seed=self.seed)


#: a neural sequence model's config: the experiment's fields and :data:`TRAINING_FIELDS`, taken
#: from :class:`TrainConfig` with their defaults (``lr``, ``batch_size``, ``max_epochs``, ...)
NeuralConfig = make_dataclass(
    "NeuralConfig", [(f.name, f.type, field(default=f.default)) for f in fields(TrainConfig)
                     if f.name in TRAINING_FIELDS],
    bases=(_Neural,), frozen=True,
    namespace={"__module__": __name__,
               "__doc__": "Training choices shared by the neural sequence models: the fields of "
                          ":class:`TrainConfig` (but ``grad_clip``) with its defaults."})


@dataclass(frozen=True)
class LSTMConfig(NeuralConfig):
    embedding_dim: int = 50
    hidden: int = 100
    n_layers: int = 2
    max_len: int = 50
    dropout: float = 0.2

    def build(self) -> Recommender:
        return LSTM(self.embedding_dim, self.hidden, self.n_layers, self.max_len, self.dropout,
                    train_config=self.train_config())


#: where GPTRec's item embeddings start (GPTRecConfig.item_init)
ITEM_INITS = ("random", "text", "llm")


@dataclass(frozen=True)
class GPTRecConfig(NeuralConfig):
    dim: int = 64
    n_layers: int = 2
    n_heads: int = 2
    max_len: int = 50
    dropout: float = 0.3
    ffn_mult: int = 4
    attn_dropout: float = 0.0
    # or "text": item embeddings start from the pinned sentence encoder; "llm": from the pinned
    # LLM's final hidden state of each film's line (models.llm.items, HLLM's item embedding)
    item_init: str = "random"

    def build(self) -> Recommender:
        if self.item_init not in ITEM_INITS:
            raise ValueError(f"item_init must be one of {ITEM_INITS}, not {self.item_init!r}")
        vectors = None  # computed only when the model is trained (a cached one has its weights)
        if self.item_init == "text":
            def vectors():
                from .models.text import encode_items, load_encoder

                return encode_items(load_split(self.dataset).data.item_meta, load_encoder())
        elif self.item_init == "llm":
            def vectors():
                import torch

                from .models.llm import HFBackend, item_titles
                from .models.llm.items import llm_item_vectors

                backend = HFBackend.from_pretrained(device="cpu", dtype=torch.float32)  # the same on every CPU
                return llm_item_vectors(backend, item_titles(load_split(self.dataset).data))
        return GPTRec(self.dim, self.n_layers, self.n_heads, self.max_len, self.dropout,
                      self.ffn_mult, self.attn_dropout, train_config=self.train_config(), item_vectors=vectors)


#: the benchmark's models, in table order, with their tuned defaults
CONFIGS: dict[str, type[ExperimentConfig]] = {
    "Random": RandomConfig, "Popularity": PopularityConfig, "ItemKNN": ItemKNNConfig,
    "EASE": EASEConfig, "LSTM": LSTMConfig, "GPTRec": GPTRecConfig,
}


@dataclass
class Run:
    """A fitted model and how it got there."""

    config: ExperimentConfig
    model: Recommender
    split: Split
    history: list[dict] = field(default_factory=list)  # per-epoch loss, valid NDCG@10, seconds
    train_seconds: float = 0.0  # wall time of fit (of the original training when loaded)
    cached: bool = False  # loaded from the experiment cache
    path: Path | None = None

    @property
    def best_epoch(self) -> int | None:
        scored = [h for h in self.history if h.get("monitor") is not None]
        return max(scored, key=lambda h: h["monitor"])["epoch"] if scored else None

    @property
    def seconds_to_best(self) -> float | None:
        """Training wall time up to and including the best validation epoch."""
        best = self.best_epoch
        return None if best is None else sum(h["seconds"] for h in self.history if h["epoch"] <= best)

    @property
    def targets_per_epoch(self) -> int:
        """Targets of one epoch: every position of a training sequence after its first."""
        return int(sum(max(len(s) - 1, 0) for s in self.split.train))

    def validation_curve(self) -> pd.DataFrame:
        """Per evaluated epoch: the ``targets`` seen, the training ``seconds`` so far and the
        validation ``ndcg10`` (all films, seen films masked), from the run's history."""
        seconds = np.cumsum([h["seconds"] for h in self.history])
        rows = [{"epoch": h["epoch"], "targets": h["epoch"] * self.targets_per_epoch,
                 "seconds": float(seconds[h["epoch"] - 1]), "ndcg10": h["valid_ndcg10"]}
                for h in self.history if h.get("valid_ndcg10") is not None]
        return pd.DataFrame(rows, columns=["epoch", "targets", "seconds", "ndcg10"])


_SPLITS: dict[str, Split] = {}


def load_split(dataset: str = "ml-100k") -> Split:
    """The leave-one-out split of a MovieLens dataset (cached in memory).

    ``dataset`` is a name (``"ml-100k"``, the pinned offline copy; ``"ml-1m"`` or ``"ml-20m"``,
    downloaded from GroupLens once) or the path of a local folder in one of GroupLens' formats
    (``u.data``/``u.item``, ``ratings.dat``/``movies.dat`` or ``ratings.csv``/``movies.csv``),
    which is then the dataset's name on the page: the folder's name.
    """
    if dataset not in _SPLITS:
        folder = Path(str(dataset)).expanduser()
        if folder.is_dir():
            data = load_movielens(grouplens_format(folder), path=folder)
            data = replace(data, name=folder.resolve().name, _cache={})
        elif "/" in str(dataset) or str(dataset).startswith("."):
            raise FileNotFoundError(f"dataset {dataset!r}: no such folder (a GroupLens folder, or a name: "
                                    f"ml-100k, ml-1m, ml-20m)")
        else:
            data = load_movielens(dataset)
        _SPLITS[dataset] = leave_one_out(data)
    return _SPLITS[dataset]


def dataset_of(split: Split, dataset: str | None = None) -> str:
    """The dataset ``split`` was loaded as by :func:`load_split` (its name or folder, as given
    there), which every model trained on it is configured and recorded with.  ``dataset``, when
    given, must agree with it; a split that :func:`load_split` did not make (a derived one, such
    as the cold-start split) needs it."""
    loaded = next((str(name) for name, s in _SPLITS.items() if s is split), None)
    if dataset is None:
        if loaded is None:
            raise ValueError("this split was not made by load_split: pass the dataset its models are trained "
                             "under (dataset=...)")
        return loaded
    if loaded is not None and str(dataset) != loaded:
        raise ValueError(f"the split was loaded as {loaded!r}, not {dataset!r}: its models would be trained "
                         f"and recorded under the wrong dataset")
    return str(dataset)


def data_fingerprint(split: Split) -> str:
    """sha256 over the split's training sequences and targets."""
    h = hashlib.sha256(f"{split.kind}:{split.n_users}:{split.n_items}".encode())
    for part in (*split.train, split.valid, split.test):
        h.update(np.ascontiguousarray(part, np.int64).tobytes())
        h.update(b"|")
    return h.hexdigest()


def producing_modules(config: ExperimentConfig) -> tuple[str, ...]:
    """The modules whose code decides what ``config`` trains (their imports are followed by
    :func:`~recnotes.fingerprint.code_fingerprint`): the model's own, the trainer, and what
    computes the item embeddings a GPTRec starts from."""
    modules = [type(config.build()).__module__, "recnotes.models.training"]
    modules += {"text": ["recnotes.models.text"], "llm": ["recnotes.models.llm", "recnotes.models.llm.items"]
                }.get(getattr(config, "item_init", "random"), [])
    return tuple(modules)


def experiment_key(config: ExperimentConfig, split: Split, device: str | torch.device | None = None) -> str:
    """The cache key: config (with the profile in force), data, the code that trains it
    (:func:`producing_modules`, fingerprinted from the source), its kernels (fast, or the plain
    PyTorch reference) and its output-layer precision."""
    from .device import get_device, training_dtype
    from .fingerprint import code_fingerprint
    from .models.kernels import using_reference

    cfg = replace(config, profile=get_profile(config.profile).name)
    blob = json.dumps({"model": type(config).__name__, "config": asdict(cfg),
                       "data": data_fingerprint(split), "code": code_fingerprint(*producing_modules(config)),
                       "kernels": "reference" if using_reference() else "fast",
                       "train_dtype": str(training_dtype(get_device(device)))}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run(config: ExperimentConfig, split: Split | None = None, *, cache: bool = True,
        progress: bool = True, device: str | torch.device | None = None) -> Run:
    """Fit the model of ``config`` (or load it from the experiment cache).

    A neural model is trained at most once per cache: a second process asking for the
    same experiment while it trains waits for it and then loads it.
    """
    split = split if split is not None else load_split(config.dataset)
    model = config.build()
    if not isinstance(model, SequenceRecommender):
        start = time.perf_counter()
        model.fit(split)
        return Run(config, model, split, train_seconds=time.perf_counter() - start)
    folder = cache_dir() / "experiments" / experiment_key(config, split, device)
    if not cache:
        return _fit(config, model, split, None, progress, device)
    with locked(folder):
        return _load_or_fit(config, model, split, folder, progress, device)


def _load_entry(config: ExperimentConfig, model: SequenceRecommender, split: Split, folder: Path,
                device) -> Run | None:
    """The cached run in ``folder``, or None when there is none (a broken one is moved aside)."""
    meta_path, weights = folder / "run.json", folder / "model.safetensors"
    if not meta_path.is_file():
        return None  # never finished (an interrupted run resumes from folder/checkpoint)
    try:
        meta = json.loads(meta_path.read_text())
        expected = meta["model_sha256"]
        if not weights.is_file():
            raise ValueError("model.safetensors is missing")
        if file_sha256(weights) != expected:
            raise ValueError("model.safetensors does not match the checksum in run.json")
        if getattr(model, "item_vectors", None) is not None:
            model.item_vectors = None  # the cached weights replace any start: do not compute it
        model.build(split.n_items)
        model.load_state_dict(load_file(str(weights)))
        history, seconds = meta["history"], float(meta["train_seconds"])
    except Exception as err:  # noqa: BLE001 - any unreadable entry is retrained
        move_aside(folder, f"the cached {model.name}", f"{type(err).__name__}: {err}")
        return None
    from .device import get_device

    model.to(get_device(device)).eval()
    return Run(config, model, split, history, seconds, True, folder)


def _load_or_fit(config: ExperimentConfig, model: SequenceRecommender, split: Split, folder: Path,
                 progress: bool, device) -> Run:
    cached = _load_entry(config, model, split, folder, device)
    if cached is not None:
        return cached
    result = _fit(config, model, split, folder, progress, device)
    # an interrupted-and-resumed run reports the time of all its epochs
    result.train_seconds = max(result.train_seconds, sum(h["seconds"] for h in model.history))
    weights = folder / "model.safetensors"
    write_atomic(weights, lambda tmp: save_file(
        {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp)))
    meta = {"model": model.name, "config": asdict(config), "model_config": model.config(),
            "history": model.history, "train_seconds": result.train_seconds,
            "data": data_fingerprint(split), "recnotes_version": __version__,
            "model_sha256": file_sha256(weights)}
    write_atomic(folder / "run.json", lambda tmp: tmp.write_text(json.dumps(meta, indent=1)))
    shutil.rmtree(folder / "checkpoint", ignore_errors=True)
    return result


def _fit(config: ExperimentConfig, model: SequenceRecommender, split: Split, folder: Path | None,
         progress: bool, device) -> Run:
    """Train ``model``, checkpointing into ``folder`` when given."""
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    model.fit(split, checkpoint_dir=folder / "checkpoint" if folder is not None else None,
              progress=progress, device=device)
    return Run(config, model, split, model.history, time.perf_counter() - start, False, folder)


def main(argv: list[str] | None = None) -> int:
    """``python -m recnotes.experiments MODEL [--seed S] [--profile P]``: train a model of
    ``CONFIGS`` with its defaults into the experiment cache (nothing to do when cached)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m recnotes.experiments", description=main.__doc__.split("\n")[0])
    parser.add_argument("model", choices=[n for n, c in CONFIGS.items() if issubclass(c, NeuralConfig)])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", default=None, help="full | ci | smoke (default: $RECNOTES_PROFILE or full)")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--item-init", default=None, choices=list(ITEM_INITS),
                        help="GPTRec only: start the item embeddings from the text encoder or the LLM")
    args = parser.parse_args(argv)
    extra = {"item_init": args.item_init} if args.item_init else {}
    if extra and args.model != "GPTRec":
        parser.error("--item-init is for GPTRec only")
    config = CONFIGS[args.model](dataset=args.dataset, seed=args.seed, profile=resolve_profile(args.profile), **extra)
    result = run(config, progress=False)
    print(f"{args.model} seed {args.seed} ({config.profile}): "
          f"{'loaded from' if result.cached else f'trained in {result.train_seconds:.0f} s into'} {result.path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
