"""The book's LLM work as cached experiments: zero-shot scores, LoRA fine-tuning, re-ranking.

Ranking protocol P2's users with a language model is the book's costliest step,
so, like a trained model, each LLM run is a frozen config whose result is stored
in the experiment cache (``cache_dir()/experiments/<key>/``, keyed by the
config, the data, the device's precision and the code that computes it, see
:func:`_key`) and computed once:

* :class:`LoRAConfig`: LoRA adapters fine-tuned on windows of the training
  sequences, every title a target
  (:class:`~recnotes.models.llm.finetune.FineTunedLLMRanker`), kept after each
  number of targets of the learning curve;
* :class:`LLMScoresConfig`: the scores a ranker (zero-shot with a template, or
  with the adapters of a :class:`LoRAConfig` after some number of targets)
  gives to a candidate set of the profile's P2 users: protocol P2's candidates
  (and, for the watched-first probe, one film each user watched), or GPTRec's
  top 20 of the whole catalogue (retrieve, then re-rank).

Chapter 6's runs are named in :mod:`recnotes.llm_tasks` (``python -m
recnotes.llm_tasks TASK`` computes one into the cache).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch

from . import __version__
from .assets import cache_dir
from .device import get_device
from .evaluate import Candidates, sample_candidates
from .experiments import ExperimentConfig, GPTRecConfig, data_fingerprint, dataset_of, load_split, run
from .committed import MODEL_NAMES
from .models.base import Recommender
from .profiles import get_profile, resolve_profile
from .safeio import file_sha256, locked, move_aside, write_atomic

if TYPE_CHECKING:  # pragma: no cover
    from .data.splits import Split
    from .models.llm.finetune import LoRASettings

__all__ = ["LoRAConfig", "LLMScoresConfig", "LLMScores", "CachedScores", "reranked_ranks", "blend_scores", "lora_run",
           "llm_scores", "scores_folder", "watched_candidates", "gptrec_top"]


#: the name of the model whose adapters the long run committed (recnotes.longrun)
WHOLE_NAME = MODEL_NAMES["chosen"]

#: users whose full pass is timed again, alone, for a run whose bottom blocks a group shares
_ALONE_USERS = 16
_ALONE_PASSES = 2

#: targets (training titles) of the fine-tuning run per profile (the curve's sizes are capped to it)
_TARGETS = {"full": 8000, "ci": 40, "smoke": 20}


def _book_settings():
    from .models.llm.finetune import LoRASettings

    return LoRASettings()


@dataclass(frozen=True)
class LoRAConfig(ExperimentConfig):
    """Fine-tune the LLM with LoRA adapters: ``tuning`` says how
    (:class:`~recnotes.models.llm.finetune.LoRASettings`, whose defaults are chapter 6's: the best
    on validation within the book's budget, scripts/select_lora.py, book/tuning/LoRA.json); the
    config's seed is the fine-tuning's."""

    llm_model: str | None = None
    tuning: "LoRASettings" = field(default_factory=_book_settings)
    # the long run (recnotes.longrun): every training title a target once, beyond the book's
    # budget; the full profile does not cap it, the small ones do
    whole: bool = False

    @property
    def window(self) -> int:
        return self.tuning.window

    @property
    def layers(self) -> int:
        return self.tuning.layers

    def settings(self):
        """The fine-tuning settings, with the config's seed and the profile's cap on the number of
        targets (none for a whole run in the full profile)."""
        name = get_profile(self.profile).name
        s = self.tuning
        n = s.n_targets if (self.whole and name == "full") else min(s.n_targets, _TARGETS[name])
        keep = tuple(sorted({min(k, n) for k in s.keep}))
        return replace(s, n_targets=n, keep=keep, seed=self.seed)


@dataclass(frozen=True)
class LLMScoresConfig(ExperimentConfig):
    """Scores of an LLM ranker on a candidate set of the profile's P2 users (test stage).

    ``candidates``: ``"P2"`` (protocol P2: the target and 19 unwatched films, seeded) or
    ``"GPTRec-top20"`` (the 20 films GPTRec, default config and seed 0, ranks highest in the
    whole catalogue, seen films masked).  With ``watched`` the ranker also scores, per user,
    one film they watched recently (the watched-first probe), as a 21st continuation.
    """

    llm_model: str | None = None
    template: str = "completion"
    max_history: int = 10
    candidates: str = "P2"
    watched: bool = False
    lora: LoRAConfig | None = None
    lora_targets: int | None = None  # which kept adapters (None: after all the targets)
    stage: str = "test"  # "valid": the users' validation film is the target (for choosing)
    reduce: str = "mean"  # a candidate's score: mean or summed log-probability of its tokens
    n_users: int | None = None  # default: the profile's P2 users
    # only the first users (in user order) of those P2 users, on the same candidates: a
    # re-derivation of a committed record on a sample (not part of the cache key when None)
    first_users: int | None = None
    batch_users: int = 1
    # a folder of committed adapters in peft's format (the long run's, recnotes.longrun), loaded
    # with PeftModel.from_pretrained and merged; its cache key holds the weights' checksum
    adapters: str | None = None


@dataclass
class LLMScores:
    """A stored LLM ranking: per user, the candidates and their scores (higher = better)."""

    config: LLMScoresConfig
    name: str
    users: np.ndarray  # [n]
    items: np.ndarray  # [n, c]
    scores: np.ndarray  # [n, c]
    target_pos: np.ndarray  # [n]; -1 where the target is not among the candidates
    watched_items: np.ndarray | None = None  # [n]
    watched_scores: np.ndarray | None = None  # [n]
    stats: dict = field(default_factory=dict)
    cached: bool = False

    def model(self) -> "CachedScores":
        """A model that answers ``score_candidates`` with these scores (for the evaluators)."""
        return CachedScores(self)

    def watched_first(self) -> float:
        """The share of users for whom the watched film (the probe's) outscores every remaining
        candidate (:func:`~recnotes.models.llm.probes.watched_first_rate`)."""
        from .models.llm.probes import watched_first_rate

        if self.watched_scores is None:
            raise ValueError(f"{self.name}: this run did not score a watched film")
        return watched_first_rate(self.scores, self.watched_scores, self.stats["watched_slots"])

    def candidates(self) -> Candidates:
        """The candidate set (P2 only: every target is among the candidates)."""
        if (self.target_pos < 0).any():
            raise ValueError("some targets are not among these candidates (a re-ranking run)")
        return Candidates(self.users, self.items, self.target_pos, self.config.stage, self.config.seed)

    def evaluate(self, split: Split, ks: tuple[int, ...] = (1, 5, 10)):
        """This ranking evaluated on its own candidates (protocol P2): an ``EvalResult``."""
        from .evaluate import evaluate_candidates

        return evaluate_candidates(self.model(), split, self.candidates(), stage=self.config.stage, ks=ks)


class CachedScores(Recommender):
    """Stored LLM scores behind the ``score_candidates`` interface; asking for other candidates
    than the stored ones is an error."""

    def __init__(self, scores: LLMScores) -> None:
        self.stored = scores
        self.name = scores.name
        self._rows = {tuple(row.tolist()): i for i, row in enumerate(scores.items)}

    def score_candidates(self, histories, candidates) -> torch.Tensor:
        out = []
        for row in np.asarray(candidates):
            key = tuple(int(i) for i in row)
            if key not in self._rows:
                raise KeyError(f"{self.name}: these candidates were not scored: {key[:5]}...")
            out.append(self.stored.scores[self._rows[key]])
        return torch.from_numpy(np.stack(out))


# ---------------------------------------------------------------- helpers
def watched_candidates(histories: Sequence[Sequence[int]], candidates: np.ndarray, target_pos: Sequence[int],
                       recent: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """For the watched-first probe: per user, one film among the last ``recent`` of their history
    (not already a candidate), and the non-target slot it replaces (both seeded, as
    :func:`recnotes.models.llm.probes.watched_first` draws them)."""
    rng = np.random.default_rng(seed)
    n = candidates.shape[1]
    items, slots = np.empty(len(candidates), np.int64), np.empty(len(candidates), np.int64)
    for u, (hist, t) in enumerate(zip(histories, target_pos)):
        pool = [int(i) for i in np.asarray(hist).ravel() if i != 0][-recent:]
        pool = [i for i in dict.fromkeys(pool) if i not in set(candidates[u].tolist())]
        if not pool:
            raise ValueError(f"user row {u} has no watched film to insert")
        slots[u] = rng.choice([k for k in range(n) if k != int(t)], 1, replace=False)[0]
        items[u] = rng.choice(pool, 1, replace=False)[0]
    return items, slots


def gptrec_top(split, users: np.ndarray, k: int = 20, seed: int = 0, profile: str = "full",
               dataset: str | None = None, stage: str = "test",
               with_scores: bool = False) -> tuple[np.ndarray, ...]:
    """GPTRec's (default config) top ``k`` of the whole catalogue for ``users`` at ``stage``,
    seen films masked, and each user's target position in it (-1 when it is not there); with
    ``with_scores``, GPTRec's scores of those films too (for a blend).  ``dataset``: the split's
    own (:func:`~recnotes.experiments.dataset_of`) unless given."""
    model = run(GPTRecConfig(dataset=dataset_of(split, dataset), seed=seed, profile=profile), split, progress=False).model
    hist = split.histories(stage)
    scores = model.score([hist[u] for u in users]).float()
    scores[:, 0] = float("-inf")
    for row, u in enumerate(users):
        seen = torch.as_tensor(np.asarray(hist[u], dtype=np.int64))
        scores[row, seen[seen > 0]] = float("-inf")
    values, top = scores.topk(k, dim=1)
    top = top.cpu().numpy().astype(np.int64)
    targets = split.targets(stage)[users]
    pos = np.array([int(np.flatnonzero(row == t)[0]) if t in row else -1 for row, t in zip(top, targets)])
    return (top, pos, values.double().cpu().numpy()) if with_scores else (top, pos)


def reranked_ranks(scores: np.ndarray, target_pos: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Full-ranking (P1) ranks, 0-based, after each user's retrieved list is re-ordered by
    ``scores`` ``[n, k]`` (higher first, ties in the retriever's order): a target inside the list
    takes its place in the new order, one outside (``target_pos == -1``) keeps ``fallback``, its
    rank in the retriever's ranking of the whole catalogue."""
    scores = np.asarray(scores, dtype=np.float64)
    target_pos = np.asarray(target_pos)
    order = (-scores).argsort(axis=1, kind="stable").argsort(axis=1)
    inside = target_pos >= 0
    rows = np.arange(len(target_pos))
    return np.where(inside, order[rows, np.maximum(target_pos, 0)], np.asarray(fallback))


def blend_scores(retriever: np.ndarray, ranker: np.ndarray, weight: float) -> np.ndarray:
    """``weight * z(retriever) + (1 - weight) * z(ranker)``, each score standardised within a
    user's row (mean 0, standard deviation 1; a constant row becomes 0)."""
    def z(x):
        x = np.asarray(x, dtype=np.float64)
        sd = x.std(axis=1, keepdims=True)
        return np.where(sd > 0, (x - x.mean(axis=1, keepdims=True)) / np.where(sd > 0, sd, 1), 0.0)

    if not 0 <= weight <= 1:
        raise ValueError(f"weight must be in [0, 1], got {weight}")
    return weight * z(retriever) + (1 - weight) * z(ranker)


def _users(config: ExperimentConfig) -> int:
    """The number of users a run scores: the profile's P2 users, or fewer where the config says."""
    n = get_profile(config.profile).p2_users
    return min(config.n_users, n) if getattr(config, "n_users", None) else n


#: the code an LLM run's result depends on (see :func:`_key`): the LLM package (prompts, scoring,
#: backends, and what they import), the fine-tuning, and the candidates' sampling
PRODUCING_MODULES = ("recnotes.models.llm", "recnotes.models.llm.finetune", "recnotes.evaluate.protocols")


def _key(config: ExperimentConfig, split) -> str:
    """The cache key: config (with the profile in force), data, the code that computes the run
    (:data:`PRODUCING_MODULES` with what they import, and this module's own code, fingerprinted
    from the source; a re-ranking run also holds the key of the GPTRec whose top 20 it re-orders),
    and the device and precision the LLM runs in (bf16 and float32 give slightly different scores)."""
    import hashlib

    from .device import inference_dtype
    from .experiments import experiment_key
    from .fingerprint import code_fingerprint

    device = get_device(None)
    fields = asdict(replace(config, profile=get_profile(config.profile).name))
    if getattr(config, "adapters", None):  # the weights, not where they are
        fields["adapters"] = file_sha256(Path(config.adapters) / "adapter_model.safetensors")
    if getattr(config, "candidates", None) == "GPTRec-top20":
        fields["retriever"] = experiment_key(GPTRecConfig(dataset=config.dataset, seed=config.seed,
                                                          profile=fields["profile"]), split)
    blob = json.dumps({"kind": type(config).__name__,
                       "config": fields,
                       "data": data_fingerprint(split),
                       "code": code_fingerprint(*PRODUCING_MODULES, own=("recnotes.llm_experiments",)),
                       "device": device.type,
                       "dtype": str(inference_dtype(device))}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ---------------------------------------------------------------- LoRA
@dataclass
class LoRARun:
    config: LoRAConfig
    folder: Path
    history: list
    train_seconds: float
    targets: int  # titles trained on
    train_targets: int  # titles in all the training sequences (the share covered: targets / this)
    trainable_parameters: int
    cached: bool

    @property
    def targets_per_second(self) -> float:
        return self.targets / self.train_seconds if self.train_seconds else float("nan")

    @property
    def coverage(self) -> float:
        """The share of the training films that were a target."""
        return self.targets / self.train_targets

    def seconds_at(self, targets: int) -> float:
        """Training seconds until ``targets`` targets had been seen (from the run's history)."""
        return next((h["seconds"] for h in self.history if h["targets"] >= targets), self.train_seconds)

    def adapters(self, targets: int | None = None) -> Path:
        """The folder of the adapters after ``targets`` targets, in peft's format (default: the
        kept size of the whole run)."""
        n = max(self.config.settings().keep) if targets is None else targets
        path = self.folder / f"adapters-{n}"
        if not (path / "adapter_config.json").is_file():
            kept = sorted(int(p.name.split("-")[1]) for p in self.folder.glob("adapters-*"))
            raise FileNotFoundError(f"no adapters after {n} targets in {self.folder} (kept: {kept})")
        return path


def lora_run(config: LoRAConfig, split=None, progress: bool = True) -> LoRARun:
    """Fine-tune (or load from the cache) the adapters of ``config``: those after each kept number
    of targets, in peft's format (``adapters-<targets>/``)."""
    import shutil

    from .models.llm import item_titles, load_backend
    from .models.llm.finetune import FineTunedLLMRanker

    split = split if split is not None else load_split(config.dataset)
    folder = cache_dir() / "experiments" / f"lora-{_key(config, split)}"
    with locked(folder):
        meta_path = folder / "run.json"
        if meta_path.is_file():
            try:
                meta = json.loads(meta_path.read_text())
                for name, digest in meta["sha256"].items():
                    if file_sha256(folder / name) != digest:
                        raise ValueError(f"{name} does not match the checksum in run.json")
                return LoRARun(config, folder, meta["history"], meta["train_seconds"], meta["targets"],
                               meta["train_targets"], meta["trainable_parameters"], True)
            except Exception as err:  # noqa: BLE001 - retrain what cannot be read
                move_aside(folder, "the cached LoRA adapters", f"{type(err).__name__}: {err}")
        settings = config.settings()
        ranker = FineTunedLLMRanker(load_backend(config.llm_model), item_titles(split.data), settings)
        ranker.fit(split, checkpoint_dir=folder / "checkpoint", progress=progress)
        for k in settings.keep:
            shutil.rmtree(folder / f"adapters-{k}", ignore_errors=True)
            (folder / "checkpoint" / f"adapters-{k}").rename(folder / f"adapters-{k}")
        weights = [f"adapters-{k}/adapter_model.safetensors" for k in settings.keep]
        train_targets = int(sum(len(seq) for seq in split.train))
        meta = {"config": asdict(config), "history": ranker.history, "train_seconds": ranker.train_seconds,
                "targets": ranker.targets_seen, "train_targets": train_targets,
                "trainable_parameters": ranker.trainable_parameters(),
                "recnotes_version": __version__, "sha256": {n: file_sha256(folder / n) for n in weights}}
        write_atomic(meta_path, lambda tmp: tmp.write_text(json.dumps(meta, indent=1)))
        shutil.rmtree(folder / "checkpoint", ignore_errors=True)
        return LoRARun(config, folder, ranker.history, ranker.train_seconds, ranker.targets_seen,
                       train_targets, meta["trainable_parameters"], False)


# ---------------------------------------------------------------- scores
def _ranker(config: LLMScoresConfig, titles):
    """The ranker of ``config``, its backend, and its name in the results: zero-shot, or the
    pinned model with peft adapters (committed, or kept by a :class:`LoRAConfig`'s run) loaded by
    ``PeftModel.from_pretrained`` and merged, scored as it would be served."""
    from .models.llm import LLMRanker, load_backend
    from .models.llm.finetune import with_adapters

    backend, name = load_backend(config.llm_model), None
    if config.lora is not None:
        if config.template != "list" or config.max_history not in (0, config.lora.window - 1):
            raise ValueError(f"the fine-tuned ranker scores in its training format: template 'list' and "
                             f"max_history {config.lora.window - 1} (window - 1), or 0 (the prior alone)")
        trained = lora_run(config.lora)
        path = trained.adapters(config.lora_targets)
        backend = with_adapters(backend, path)
        name = f"LLMRanker[LoRA {min(int(path.name.split('-')[1]), trained.targets)} targets,list]"
    elif config.adapters is not None:
        backend, name = with_adapters(backend, config.adapters), WHOLE_NAME
    ranker = LLMRanker(backend, titles, "likelihood", config.template, config.max_history, seed=config.seed,
                       batch_users=config.batch_users, reduce=config.reduce)
    return ranker, backend, name or ranker.name


def _run_name(config: LLMScoresConfig, name: str) -> str:
    """The model's name in the results, with a suffix for the controls (no history; a list
    prompt shorter than the training window)."""
    if config.max_history == 0:
        return f"{name} (prior alone)"
    if config.template == "list" and config.lora is None and config.adapters is None \
            and config.max_history != _book_settings().window - 1:
        return f"{name} ({config.max_history} films)"
    return name


def scores_folder(config: LLMScoresConfig, split) -> Path:
    return cache_dir() / "experiments" / f"llm-{_key(config, split)}"


def llm_scores(config: LLMScoresConfig, split=None, progress: bool = True, lower=None,
               time_alone: bool = True) -> LLMScores:
    """Score (or load from the cache) the candidates of ``config``.

    ``lower``: a :class:`~recnotes.models.llm.likelihood.LowerLayers` shared with other runs whose
    models are equal below their adapters (see :func:`compute_group`).  A run that reused them
    times a full pass of its model alone on a few users, unless ``time_alone`` is off (then its
    cost alone is not recorded: ``seconds_per_user_alone`` is None)."""
    from .models.llm import item_titles

    split = split if split is not None else load_split(config.dataset)
    folder = scores_folder(config, split)
    with locked(folder):
        cached = _load_scores(config, folder)
        if cached is not None:
            return cached
        n_users = _users(config)
        p2 = sample_candidates(split, n_users=n_users, seed=config.seed, stage=config.stage)
        users = p2.users
        if config.candidates == "P2":
            items, target_pos = p2.items, p2.target_pos
        elif config.candidates == "GPTRec-top20":
            items, target_pos = gptrec_top(split, users, 20, config.seed, config.profile, config.dataset,
                                           stage=config.stage)
        else:
            raise ValueError(f"candidates must be 'P2' or 'GPTRec-top20', not {config.candidates!r}")
        if config.first_users is not None:
            users, items, target_pos = (a[:config.first_users] for a in (users, items, target_pos))
        hist = split.histories(config.stage)
        histories = [hist[u] for u in users]
        titles = item_titles(split.data)
        ranker, backend, name = _ranker(config, titles)
        ranker.progress = progress
        watched_items = watched_slots = None
        scored_items = items
        if config.watched:
            if config.template not in ("completion", "list"):
                raise ValueError("the watched film is scored on its own: completion or list template only")
            watched_items, watched_slots = watched_candidates(histories, items, target_pos, seed=config.seed)
            scored_items = np.concatenate([items, watched_items[:, None]], axis=1)
        start = time.perf_counter()
        hits_before = lower.hits if lower is not None else 0
        scores = ranker.score_candidates(histories, scored_items, lower=lower).numpy()
        seconds = time.perf_counter() - start
        reused = bool(lower is not None and lower.hits > hits_before)
        st = ranker.stats
        tokens = {"prompt_tokens": st.prompt_tokens, "completion_tokens": st.completion_tokens,
                  "tokens_per_user": st.tokens_per_user}
        alone, k, alone_tokens = seconds / len(users), len(users), st.tokens_per_user
        if lower is not None:  # in a group: the bottom blocks were kept for, or taken from, another run
            alone, k, alone_tokens = None, 0, None
            if time_alone:  # a full pass of this model alone, on the same first users in every run,
                k = min(len(users), _ALONE_USERS)  # the faster of two (the first may pay first uses)
                passes = []
                for _ in range(_ALONE_PASSES):
                    ranker.reset_stats()
                    t0 = time.perf_counter()
                    ranker.score_candidates(histories[:k], scored_items[:k])
                    passes.append((time.perf_counter() - t0) / k)
                alone, alone_tokens = min(passes), ranker.stats.tokens_per_user
        stats = {"seconds": seconds, "users": len(users), "seconds_per_user": seconds / len(users),
                 # a full pass of this model alone (the cost to quote for it)
                 "seconds_per_user_alone": alone, "users_timed_alone": k, "tokens_per_user_alone": alone_tokens,
                 **tokens, "threads": torch.get_num_threads(), "model": backend.name,
                 # whether the bottom blocks' output came from a run before this one (then
                 # seconds_per_user is not the cost of this model alone)
                 "shared_bottom_blocks": lower.n if lower is not None else 0,
                 "reused_bottom_blocks": reused,
                 # device, dtype, parameters, blocks, origin (None where a served model's are unknown)
                 **backend.describe()}
        if hasattr(backend, "requests"):  # a served model: its requests and the time spent waiting
            stats.update(requests=backend.requests, server_seconds=backend.seconds)
        name = _run_name(config, name)
        result = LLMScores(config, name, users, items, scores[:, :items.shape[1]], target_pos,
                           watched_items, scores[:, -1] if config.watched else None, stats, False)
        if config.watched:
            result.stats["watched_slots"] = watched_slots.tolist()
        _store_scores(result, folder)
        return result


def _store_scores(result: LLMScores, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"users": result.users, "items": result.items, "scores": result.scores, "target_pos": result.target_pos}
    if result.watched_items is not None:
        arrays.update(watched_items=result.watched_items, watched_scores=result.watched_scores)
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    write_atomic(folder / "scores.npz", write)
    meta = {"config": asdict(result.config), "name": result.name, "stats": result.stats,
            "recnotes_version": __version__, "sha256": file_sha256(folder / "scores.npz")}
    write_atomic(folder / "run.json", lambda tmp: tmp.write_text(json.dumps(meta, indent=1, default=str)))


def _load_scores(config: LLMScoresConfig, folder: Path) -> LLMScores | None:
    if not (folder / "run.json").is_file():
        return None
    try:
        meta = json.loads((folder / "run.json").read_text())
        if file_sha256(folder / "scores.npz") != meta["sha256"]:
            raise ValueError("scores.npz does not match the checksum in run.json")
        with np.load(folder / "scores.npz") as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as err:  # noqa: BLE001 - recompute what cannot be read
        move_aside(folder, "the cached LLM scores", f"{type(err).__name__}: {err}", then="scoring again")
        return None
    return LLMScores(config, meta["name"], arrays["users"], arrays["items"], arrays["scores"], arrays["target_pos"],
                     arrays.get("watched_items"), arrays.get("watched_scores"), meta["stats"], True)
