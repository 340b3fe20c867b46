"""Chapter 6's LLM runs by name: the task table, the groups computed together, and the command line.

Each task is a config of :mod:`recnotes.llm_experiments` (whose cache keys hold that module's
code, not this one's: editing the table or the command line recomputes nothing that did not
change).  ``python -m recnotes.llm_tasks TASK`` computes one task, or one group, into the
experiment cache: the book's executor runs them as lane tasks beside the trainings, and chapter 6
then reads them with :func:`chapter_task`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch

from .experiments import ExperimentConfig, load_split
from .llm_experiments import LLMScores, LLMScoresConfig, LoRAConfig, llm_scores, lora_run, scores_folder
from .profiles import resolve_profile

if TYPE_CHECKING:  # pragma: no cover
    from .data.splits import Split

__all__ = ["TASKS", "GROUPS", "CURVE", "TASKS_QUOTED", "task_config", "compute", "compute_group", "chapter_task",
           "group_of", "main"]


def _adapters(dataset, seed, profile, llm_model=None, window=None) -> LoRAConfig:
    """The fine-tuning config (``window``: another number of films per window than the default)."""
    from .models.llm.finetune import LoRASettings

    tuning = LoRASettings() if window is None else LoRASettings(window=int(window))
    return LoRAConfig(dataset=dataset, seed=seed, profile=profile, llm_model=llm_model, tuning=tuning)


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
    # the prior-alone controls: one prompt (the header alone) for every user, the same three models
    "priors": ("prior-zero-shot-list", "prior-lora", "prior-lora-whole"),
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
    from .models.llm import load_backend
    from .models.llm.likelihood import LowerLayers

    if name not in GROUPS:
        raise ValueError(f"unknown group {name!r}; choose one of {sorted(GROUPS)}")
    configs = {n: task_config(n, dataset, seed, profile, llm_model, window) for n in GROUPS[name]}
    configs = {n: c for n, c in configs.items() if c is not None}  # runs that do not apply here
    split = split if split is not None else load_split(dataset)
    lower = None
    if not all((scores_folder(c, split) / "run.json").is_file() for c in configs.values()):
        n_layers = load_backend(llm_model).model.config.num_hidden_layers
        shared = n_layers - max([c.lora.layers for c in configs.values() if c.lora is not None]
                                + [_adapted_blocks(c.adapters) for c in configs.values() if c.adapters], default=0)
        lower = LowerLayers(shared) if 0 < shared < n_layers else None  # adapters on every block: nothing to share
    # the cost alone is quoted for the first and the last of the group's runs in TASKS_QUOTED (the
    # zero-shot model and the book's fine-tuning), each timed alone on the same users; in a small
    # profile the curve's sizes may all be capped to the last, and their configs be equal to it
    named = [n for n in GROUPS[name] if n in TASKS_QUOTED and n in configs]
    quoted = [configs[n] for n in named[:1] + named[-1:]]
    return {n: llm_scores(c, split, progress=progress, lower=lower, time_alone=c in quoted)
            for n, c in configs.items()}


def _adapted_blocks(folder: str) -> int:
    """How many top blocks a peft adapter folder adapts (all, when it does not say)."""
    from .models.llm import load_backend

    meta = json.loads((Path(folder) / "adapter_config.json").read_text())
    n = int(load_backend(None).model.config.num_hidden_layers)
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
    parser = argparse.ArgumentParser(prog="python -m recnotes.llm_tasks",
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
