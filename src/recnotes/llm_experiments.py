"""The book's LLM work as cached experiments: zero-shot scores, LoRA fine-tuning, re-ranking.

Ranking protocol P2's users with a language model is the book's costliest step,
so, like a trained model, each LLM run is a frozen config whose result is stored
in the experiment cache (``cache_dir()/experiments/<key>/``, keyed by the
config, the data, the model and the recnotes version) and computed once:

* :class:`LoRAConfig`: LoRA adapters fine-tuned on windows of the training
  sequences, every title a target
  (:class:`~recnotes.models.llm.finetune.FineTunedLLMRanker`), kept after each
  number of targets of the learning curve;
* :class:`LLMScoresConfig`: the scores a ranker (zero-shot with a template, or
  with the adapters of a :class:`LoRAConfig` after some number of targets)
  gives to a candidate set of the profile's P2 users: protocol P2's candidates
  (and, for the watched-first probe, one film each user watched), or GPTRec's
  top 20 of the whole catalogue (retrieve, then re-rank).

``python -m recnotes.llm_experiments TASK`` computes one of :data:`TASKS` into
the cache: the book's executor runs them as lane tasks beside the trainings,
and chapter 6 then reads them.
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
from .experiments import ExperimentConfig, GPTRecConfig, _locked, data_fingerprint, dataset_of, load_split, run
from .committed import MODEL_NAMES
from .models.base import Recommender
from .profiles import get_profile, resolve_profile
from .safeio import file_sha256, move_aside, write_atomic

if TYPE_CHECKING:  # pragma: no cover
    from .data.splits import Split

__all__ = ["LoRAConfig", "LLMScoresConfig", "LLMScores", "CachedScores", "TASKS", "GROUPS", "compute_group",
           "group_of", "chapter_task", "CURVE", "reranked_ranks", "blend_scores", "lora_run", "llm_scores", "watched_candidates", "gptrec_top", "task_config", "main"]


#: the name of the model whose adapters the long run committed (recnotes.longrun)
WHOLE_NAME = MODEL_NAMES["chosen"]

#: users whose full pass is timed again, alone, for a run whose bottom blocks a group shares
_ALONE_USERS = 16
_ALONE_PASSES = 2

#: targets (training titles) of the fine-tuning run per profile (the curve's sizes are capped to it)
_TARGETS = {"full": 8000, "ci": 40, "smoke": 20}


@dataclass(frozen=True)
class LoRAConfig(ExperimentConfig):
    """Fine-tune the LLM with LoRA adapters (see :class:`~recnotes.models.llm.finetune.LoRASettings`)."""

    llm_model: str | None = None
    # rank, layers, window and lr: the best on validation within the book's budget
    # (scripts/select_lora.py, book/tuning/LoRA.json; alpha is twice the rank there)
    rank: int = 4
    alpha: float = 8.0
    layers: int = 8
    window: int = 40
    n_targets: int = 8000
    keep: tuple[int, ...] = (1000, 4000, 8000)
    batch_size: int = 4
    lr: float = 8e-3
    # the long run (recnotes.longrun): every training title a target once, beyond the book's
    # budget; the full profile does not cap it, the small ones do
    whole: bool = False

    def settings(self):
        """The fine-tuning settings, with the profile's cap on the number of targets (none for a
        whole run in the full profile)."""
        from .models.llm.finetune import LoRASettings

        name = get_profile(self.profile).name
        n = self.n_targets if (self.whole and name == "full") else min(self.n_targets, _TARGETS[name])
        keep = tuple(sorted({min(k, n) for k in self.keep}))
        return LoRASettings(rank=self.rank, alpha=self.alpha, layers=self.layers, window=self.window,
                            n_targets=n, keep=keep, batch_size=self.batch_size, lr=self.lr, seed=self.seed)


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


def _backend(llm_model: str | None):
    from .models.llm import load_backend

    return load_backend(llm_model)


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
        """The adapters' file after ``targets`` targets (default: the kept size of the whole run)."""
        n = max(self.config.settings().keep) if targets is None else targets
        path = self.folder / f"adapter-{n}.safetensors"
        if not path.is_file():
            kept = sorted(int(p.stem.split("-")[1]) for p in self.folder.glob("adapter-*.safetensors"))
            raise FileNotFoundError(f"no adapters after {n} targets in {self.folder} (kept: {kept})")
        return path


def lora_run(config: LoRAConfig, split=None, progress: bool = True) -> LoRARun:
    """Fine-tune (or load from the cache) the adapters of ``config``."""
    from .models.llm import item_titles
    from .models.llm.finetune import FineTunedLLMRanker

    split = split if split is not None else load_split(config.dataset)
    folder = cache_dir() / "experiments" / f"lora-{_key(config, split)}"
    with _locked(folder):
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
        ranker = FineTunedLLMRanker(_backend(config.llm_model), item_titles(split.data), settings)
        ranker.fit(split, checkpoint_dir=folder / "checkpoint", progress=progress)
        folder.mkdir(parents=True, exist_ok=True)
        for k in settings.keep:
            src = folder / "checkpoint" / f"adapter-{k}.safetensors"
            write_atomic(folder / src.name, lambda tmp, src=src: tmp.write_bytes(src.read_bytes()))
        kept = [f"adapter-{k}.safetensors" for k in settings.keep]
        train_targets = int(sum(len(seq) for seq in split.train))
        meta = {"config": asdict(config), "history": ranker.history, "train_seconds": ranker.train_seconds,
                "targets": ranker.targets_seen, "train_targets": train_targets,
                "trainable_parameters": ranker.trainable_parameters(),
                "recnotes_version": __version__, "sha256": {n: file_sha256(folder / n) for n in kept}}
        write_atomic(meta_path, lambda tmp: tmp.write_text(json.dumps(meta, indent=1)))
        import shutil

        shutil.rmtree(folder / "checkpoint", ignore_errors=True)
        return LoRARun(config, folder, ranker.history, ranker.train_seconds, ranker.targets_seen,
                       train_targets, meta["trainable_parameters"], False)


# ---------------------------------------------------------------- scores
def _ranker(config: LLMScoresConfig, titles):
    from .models.llm import LLMRanker
    from .models.llm.finetune import FineTunedLLMRanker

    if config.adapters is not None:
        from .models.llm.finetune import with_adapters

        backend = with_adapters(_backend(config.llm_model), config.adapters)
        return LLMRanker(backend, titles, "likelihood", "list", config.max_history, seed=config.seed,
                         batch_users=config.batch_users, reduce=config.reduce), backend
    backend = _backend(config.llm_model)
    if config.lora is None:
        return LLMRanker(backend, titles, "likelihood", config.template, config.max_history,
                         seed=config.seed, batch_users=config.batch_users, reduce=config.reduce), backend
    if config.template != "list" or config.max_history not in (0, config.lora.window - 1):
        raise ValueError(f"the fine-tuned ranker scores in its training format: template 'list' and "
                         f"max_history {config.lora.window - 1} (window - 1), or 0 (the prior alone)")
    trained = lora_run(config.lora)
    ranker = FineTunedLLMRanker(backend, titles, config.lora.settings(), seed=config.seed,
                                batch_users=config.batch_users, reduce=config.reduce)
    ranker.max_history = config.max_history
    path = trained.adapters(config.lora_targets)
    ranker.load_adapters(path, targets=min(int(path.stem.split("-")[1]), trained.targets))
    ranker.merge()  # scored as it would be served: the adapters folded into the weights
    return ranker, ranker.backend


def _run_name(config: LLMScoresConfig, ranker) -> str:
    """The model's name in the results: the ranker's, the long run's for its committed adapters,
    and a suffix for the controls (no history; a list prompt shorter than the training window)."""
    name = WHOLE_NAME if config.adapters is not None else ranker.name
    if config.max_history == 0:
        return f"{name} (prior alone)"
    if config.template == "list" and config.lora is None and config.adapters is None \
            and config.max_history != LoRAConfig.window - 1:
        return f"{name} ({config.max_history} films)"
    return name


def _scores_folder(config: LLMScoresConfig, split) -> Path:
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
    folder = _scores_folder(config, split)
    with _locked(folder):
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
        ranker, backend = _ranker(config, titles)
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
        if lower is not None:
            backend.lower = lower
        try:
            scores = ranker.score_candidates(histories, scored_items).numpy()
        finally:
            if lower is not None:
                backend.lower = None
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
        name = _run_name(config, ranker)
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


# ---------------------------------------------------------------- tasks
def _adapters(dataset, seed, profile, llm_model=None, window=None) -> LoRAConfig:
    """The fine-tuning config (``window``: another number of films per window than the default)."""
    extra = {} if window is None else {"window": int(window)}
    return LoRAConfig(dataset=dataset, seed=seed, profile=profile, llm_model=llm_model, **extra)


def _scores(lora: bool = False, lora_targets: int | None = None, **kw) -> Callable[..., LLMScoresConfig]:
    def make(dataset, seed, profile, llm_model=None, window=None):
        adapters = _adapters(dataset, seed, profile, llm_model, window)
        targets = None if lora_targets is None else min(lora_targets, adapters.settings().n_targets)
        extra = dict(kw)
        if extra.get("template") == "list":  # the training format: the window's films before the next one
            extra.setdefault("max_history", adapters.window - 1)
        return LLMScoresConfig(dataset=dataset, seed=seed, profile=profile, llm_model=llm_model,
                               lora=adapters if lora else None, lora_targets=targets if lora else None, **extra)
    return make


def _whole(**kw) -> Callable[..., LLMScoresConfig | None]:
    """The committed adapters of the long run (recnotes.longrun), scored on the P2 users as the
    list runs are (``kw``: other fields); None where they do not apply (another model or dataset)."""
    def make(dataset, seed, profile, llm_model=None, window=None):
        from .committed import adapters_dir, read_record

        folder = adapters_dir("chosen")
        if llm_model is not None or dataset != "ml-100k" or not folder.is_dir():
            return None
        record = read_record("chosen")
        fields = {"max_history": record["settings"]["window"] - 1, "watched": True, **kw}
        return LLMScoresConfig(dataset=dataset, seed=seed, profile=profile, template="list",
                               reduce=record["reduce"], adapters=str(folder), **fields)
    return make


def _size(name: str, **kw) -> Callable[..., LLMScoresConfig | None]:
    """The committed final adapters of the second model size ``name`` (:data:`recnotes.committed.SIZES`),
    scored on the record's users as the record scored them: the full profile on ML-100K with the
    pinned models only (``kw``: other fields); None elsewhere."""
    def make(dataset, seed, profile, llm_model=None, window=None):
        from .committed import SIZES, adapters_dir, read_record

        folder = adapters_dir(name)
        if llm_model is not None or dataset != "ml-100k" or profile != "full" or not folder.is_dir():
            return None
        record = read_record(name)
        fields = {"max_history": record["settings"]["window"] - 1, "watched": True, **kw}
        return LLMScoresConfig(dataset=dataset, seed=seed, profile=profile, template="list", llm_model=SIZES[name],
                               reduce=record["reduce"], adapters=str(folder), **fields)
    return make


#: the kept adapters of the fine-tuning run that chapter 6 scores (its learning curve)
CURVE = {"lora-1k": 1000, "lora-4k": 4000, "lora-8k": 8000}

#: the LLM runs of chapter 6, by name (the executor's lane tasks are ``llm:<name>``)
TASKS: dict[str, Callable[..., ExperimentConfig]] = {
    "zero-shot-completion": _scores(template="completion", watched=True),
    "zero-shot-chat": _scores(template="recency"),
    # every list-format run scores the watched film too: their packed inputs are then the same,
    # and the group below computes the bottom blocks once for all of them
    "zero-shot-list": _scores(template="list", watched=True),
    "lora": _adapters,
    **{name: _scores(lora=True, lora_targets=k, template="list", watched=True) for name, k in CURVE.items()},
    # the long run's final adapters (committed), scored again: make book re-derives the record
    "lora-whole": _whole(),
    # controls: the same candidates with no history at all (the header alone: the model's prior),
    # and the list prompt with as many films as the completion and chat prompts show
    "prior-zero-shot-list": _scores(template="list", max_history=0),
    "prior-lora": _scores(lora=True, template="list", max_history=0),
    "prior-lora-whole": _whole(max_history=0, watched=False),
    "zero-shot-list-10": _scores(template="list", max_history=10),
    # a second model size: Gemma 3 270M's committed adapters (chapter 6's in-budget recipe), scored again
    # the first 100 of the record's 200 users: the check costs half, and its tolerance is the same
    "size-gemma3-270m": _size("gemma3-270m", first_users=100),
    "rerank-gptrec": _scores(lora=True, template="list", candidates="GPTRec-top20"),
    # the same on the validation films: the blend's weight is chosen there
    "rerank-gptrec-valid": _scores(lora=True, template="list", candidates="GPTRec-top20", stage="valid",
                                   n_users=100),
}


#: the group's runs whose cost alone is quoted: the zero-shot model and the book's fine-tuning
TASKS_QUOTED = ("zero-shot-list", *CURVE)

#: runs computed together (the executor's ``llm:<group>`` tasks): the zero-shot and the
#: fine-tuned list runs score the same prompts and candidates with models that are equal
#: below the LoRA blocks, so the bottom blocks run once per user for all of them
GROUPS: dict[str, tuple[str, ...]] = {
    "list": ("zero-shot-list", *CURVE, "lora-whole"),
}


def task_config(name: str, dataset: str = "ml-100k", seed: int = 0, profile: str | None = None,
                llm_model: str | None = None, window: int | None = None) -> ExperimentConfig:
    """The config of the named task (see :data:`TASKS`); ``window``: films per fine-tuning window
    (and the list prompt's history plus one) other than :class:`LoRAConfig`'s default."""
    if name not in TASKS:
        raise ValueError(f"unknown LLM task {name!r}; choose one of {sorted(TASKS)}")
    if window is not None and int(window) < 2:
        raise ValueError(f"window must be at least 2 films, got {window}")
    return TASKS[name](dataset, seed, resolve_profile(profile), llm_model, window)


def compute(config: ExperimentConfig, progress: bool = True):
    """Run a task's config: adapters for a :class:`LoRAConfig`, scores for a :class:`LLMScoresConfig`."""
    return lora_run(config, progress=progress) if isinstance(config, LoRAConfig) else llm_scores(config, progress=progress)


def compute_group(name: str, dataset: str = "ml-100k", seed: int = 0, profile: str | None = None,
                  llm_model: str | None = None, split=None, progress: bool = True,
                  window: int | None = None) -> dict[str, LLMScores]:
    """The runs of :data:`GROUPS` ``[name]`` by task name (from the cache where they are there),
    the blocks below every LoRA computed once per user for all of them."""
    from .models.llm.likelihood import LowerLayers

    if name not in GROUPS:
        raise ValueError(f"unknown group {name!r}; choose one of {sorted(GROUPS)}")
    configs = {n: task_config(n, dataset, seed, profile, llm_model, window) for n in GROUPS[name]}
    configs = {n: c for n, c in configs.items() if c is not None}  # runs that do not apply here
    split = split if split is not None else load_split(dataset)
    lower = None
    if not all((_scores_folder(c, split) / "run.json").is_file() for c in configs.values()):
        n_layers = _backend(llm_model).model.config.num_hidden_layers
        shared = n_layers - max([c.lora.layers for c in configs.values() if c.lora is not None]
                                + [_adapted_blocks(c.adapters) for c in configs.values() if c.adapters], default=0)
        lower = LowerLayers(shared) if 0 < shared < n_layers else None  # adapters on every block: nothing to share
    # the cost alone is quoted for the group's first run (the zero-shot model) and its last (the
    # whole fine-tuning's adapters), each timed alone on the same users; in a small profile the
    # curve's sizes may all be capped to the last, and their configs be equal to it
    quoted = (configs[GROUPS[name][0]], configs[[n for n in GROUPS[name] if n in TASKS_QUOTED][-1]])
    return {n: llm_scores(c, split, progress=progress, lower=lower, time_alone=c in quoted)
            for n, c in configs.items()}


def _adapted_blocks(folder: str) -> int:
    """How many top blocks a peft adapter folder adapts (all, when it does not say)."""
    meta = json.loads((Path(folder) / "adapter_config.json").read_text())
    n = int(_backend(None).model.config.num_hidden_layers)
    layers = meta.get("layers_to_transform")
    return n - min(layers) if layers else n


def chapter_task(name: str, dataset: str = "ml-100k", seed: int = 0, profile: str | None = None,
                 llm_model: str | None = None, split: Split | None = None, window: int | None = None) -> LLMScores:
    """One of chapter 6's LLM runs (:data:`TASKS`), from the experiment cache: computed there if
    missing, together with the runs that share its model's bottom blocks (:data:`GROUPS`)."""
    group = group_of(name)
    if group is not None:
        return compute_group(group, dataset, seed, profile, llm_model, split, window=window)[name]
    return llm_scores(task_config(name, dataset, seed, profile, llm_model, window), split)


def group_of(task: str) -> str | None:
    """The group a task is computed with, if any."""
    return next((g for g, names in GROUPS.items() if task in names), None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recnotes.llm_experiments",
                                     description="Compute one of chapter 6's LLM runs into the experiment cache.")
    parser.add_argument("task", choices=sorted(TASKS) + sorted(GROUPS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", default=None, help="full | ci | smoke (default: $RECNOTES_PROFILE or full)")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--llm-model", default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--window", type=int, default=None,
                        help="films per fine-tuning window (and the list prompt's history + 1); default: LoRAConfig's")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    if args.task in GROUPS:
        results = compute_group(args.task, args.dataset, args.seed, args.profile, args.llm_model, progress=False,
                                window=args.window)
        done = ", ".join(f"{n} {'loaded' if r.cached else 'computed'}" for n, r in results.items())
        print(f"llm:{args.task} ({resolve_profile(args.profile)}): {done} in {time.perf_counter() - start:.0f} s")
        return 0
    config = task_config(args.task, args.dataset, args.seed, args.profile, args.llm_model, args.window)
    if config is None:
        print(f"llm:{args.task}: does not apply to this model and dataset (nothing to compute)")
        return 0
    result = compute(config, progress=False)
    print(f"llm:{args.task} ({config.profile}): {'loaded' if result.cached else 'computed'} in "
          f"{time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
