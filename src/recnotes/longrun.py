"""The LLM fine-tuned over the whole training data: a long run, committed as a record.

Chapter 6 fine-tunes within the half hour that ``make book`` has; this module runs
the same recipe over **every** training window once (every training title a target
exactly once), which takes about 40 minutes on one CPU core with native bf16:

    python -m recnotes.longrun --settings chosen   # or: book (chapter 6's settings)

The run is the experiment cache's :class:`~recnotes.llm_experiments.LoRAConfig` with
``whole=True``: it checkpoints as it goes (an interrupted run resumes), shows a
progress bar, and keeps its adapters after :data:`KEEP` targets and at the end.  Each
kept point then ranks chapter 6's P2 test users and 100 validation users (the zero-shot
list prompt beside them), and the record goes to ``book/longrun/lora-<settings>.json``:
the command, the CPU and its flags, dtype, versions, seconds, the training loss, and
every point's per-user ranks; the final adapters go beside it in peft's format
(``adapter_config.json`` and ``adapter_model.safetensors``), which
``PeftModel.from_pretrained`` loads over the pinned model.

A second model size runs the same way with chapter 6's in-budget recipe unchanged
(:data:`SIZES`; ``python -m recnotes.longrun --size gemma3-270m``): its record, with the
prior-alone and popularity controls, goes to ``book/longrun/<name>.json`` beside its adapters.

``make book`` never trusts the record silently: chapter 6 scores the committed final
adapters again on its users and :func:`check_rederived` fails the chapter when the result
differs from the record by more than :data:`TOLERANCE`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .committed import MODEL_NAMES, RECORD_DIR, ROOT, SIZES, _root, _stem, adapters_dir, read_record, record_path

#: numbers of targets after which the long run keeps its adapters (and the end of the pass)
KEEP = (1000, 2000, 4000, 8000, 16000, 32000, 64000)

#: the long run's settings (LoRASettings fields) and how a candidate's line is scored (its
#: tokens' mean or summed log-probability): ``book`` is chapter 6's (LoRAConfig's defaults,
#: chosen at 2,000 targets); ``chosen`` is the best for this length on validation at a proxy
#: length of 16,000 targets (scripts/select_lora.py, book/tuning/LoRA-whole.json; a test ties them)
SETTINGS: dict[str, dict] = {
    "book": {"lora": {}, "reduce": "mean"},
    "chosen": {"lora": {"lr": 2e-3}, "reduce": "mean"},
}

#: validation users scored at every kept point (the users of the settings' search)
VALID_USERS = 100

#: how far ``make book``'s re-scoring of the final adapters may be from the record: the
#: record was computed on one CPU in bf16; another CPU (float32 without native bf16) moves
#: single scores in their last bits, which swaps near-tied candidates.  Measured: the same
#: Xeon in bf16 gives every rank again; in float32 restricted to AVX2 kernels (as on a CPU
#: without native bf16), NDCG@10 +0.004 and 86% of the 200 users at the same rank
TOLERANCE = {"ndcg10": 0.02, "same_rank_share": 0.7}


def size_config(name: str, dataset: str = "ml-100k", seed: int = 0, profile: str | None = None):
    """The in-budget fine-tuning of chapter 6 (``LoRAConfig``'s defaults) on the pinned model ``name``
    of :data:`SIZES`."""
    from .llm_experiments import LoRAConfig
    from .profiles import resolve_profile

    if name not in SIZES:
        raise ValueError(f"unknown model size {name!r}; choose one of {sorted(SIZES)}")
    return LoRAConfig(dataset=dataset, seed=seed, profile=resolve_profile(profile), llm_model=SIZES[name])


def whole_config(name: str = "chosen", dataset: str = "ml-100k", seed: int = 0, profile: str | None = None,
                 llm_model: str | None = None, split=None):
    """The long run's fine-tuning config: every training title a target once, adapters kept
    after each size of :data:`KEEP` and at the end (in a small profile, the profile's cap)."""
    from .experiments import load_split
    from .llm_experiments import LoRAConfig
    from .models.llm.finetune import LoRASettings
    from .profiles import resolve_profile

    if name not in SETTINGS:
        raise ValueError(f"unknown settings {name!r}; choose one of {sorted(SETTINGS)}")
    split = split if split is not None else load_split(dataset)
    total = int(sum(len(seq) for seq in split.train))
    keep = tuple(k for k in KEEP if k < total) + (total,)
    return LoRAConfig(dataset=dataset, seed=seed, profile=resolve_profile(profile), llm_model=llm_model, whole=True,
                      tuning=LoRASettings(n_targets=total, keep=keep, **SETTINGS[name]["lora"]))


def point_scores(config, split, stage: str, n_users: int | None, progress: bool = False,
                 watched: bool = False, reduce: str = "mean", prior: bool = False,
                 points: tuple[int, ...] | None = None) -> dict:
    """The zero-shot list ranker and every kept point of ``config``'s run on the P2 candidates of
    ``stage``: ``{targets (0 for zero-shot): LLMScores}``, the blocks below the adapters computed
    once per user for all of them.  ``prior``: the header alone, no film of the user's (the
    prior-alone control); ``points``: only these (0 and kept targets)."""
    from .llm_experiments import LLMScoresConfig, llm_scores
    from .models.llm import load_backend
    from .models.llm.likelihood import LowerLayers

    common = dict(dataset=config.dataset, seed=config.seed, profile=config.profile, llm_model=config.llm_model,
                  template="list", max_history=0 if prior else config.window - 1, stage=stage, n_users=n_users,
                  watched=watched, reduce=reduce)
    configs = {0: LLMScoresConfig(**common)}
    configs |= {k: LLMScoresConfig(**common, lora=config, lora_targets=k) for k in config.settings().keep}
    if points is not None:
        configs = {k: c for k, c in configs.items() if k in points}
    n_layers = load_backend(config.llm_model).model.config.num_hidden_layers
    lower = LowerLayers(n_layers - config.layers) if config.layers < n_layers else None
    return {k: llm_scores(c, split, progress=progress, lower=lower, time_alone=False) for k, c in configs.items()}


def _ranks(result, split, stage: str) -> np.ndarray:
    from .evaluate import evaluate_candidates

    return evaluate_candidates(result.model(), split, result.candidates(), stage=stage, ks=(1, 5, 10)).ranks


def ndcg10(ranks) -> float:
    """Mean NDCG@10 of 0-based target ranks (the evaluator's metric)."""
    from .evaluate.metrics import rank_metrics

    return float(np.mean(rank_metrics(np.asarray(ranks), (10,))["NDCG@10"]))


#: the record's zero-shot point: the list prompt, before any fine-tuning
ZERO_SHOT = "LLM zero-shot, list prompt"

_WORDS = {"lr": "peak learning rate {}", "window": "windows of {} films", "rank": "adapter rank {}",
          "layers": "adapters on the top {} blocks", "objective": "the {} loss", "reduce": "{} log-probability scores"}
_LOSSES = {"lm": "language-model", "rank": "rank", "lm+rank": "language-model + rank"}


def settings_words(record: dict, book: dict) -> str:
    """The long run's chosen settings in words, with the book's where they differ."""
    def value(rec, field):
        return rec["reduce"] if field == "reduce" else rec["settings"][field]

    parts = []
    for field, words in _WORDS.items():
        mine, theirs = value(record, field), value(book, field)
        text = words.format(f"{mine:g}" if isinstance(mine, float) else _LOSSES.get(mine, mine)
                            if field == "objective" else mine)
        if mine != theirs:
            text += f" (the book's run: {theirs:g})" if isinstance(theirs, float) else f" (the book's run: {theirs})"
        parts.append(text)
    same = all(value(record, f) == value(book, f) for f in _WORDS)
    return ("the book's own settings held up: " if same else "") + ", ".join(parts)


#: the second sizes' names for a reader (their models' identifiers end with it)
SIZE_LABELS = {"gemma3-270m": "Gemma 3 270M"}


def model_name(record: dict, targets: int | None = None) -> str:
    """The identifier of the record's model after ``targets`` (default: its last point): a long
    run's :data:`MODEL_NAMES`; a size record's zero-shot or fine-tuned list ranker, named after
    the model (``"LLMRanker[LoRA 8000 targets,list], Gemma 3 270M"``)."""
    name = record["settings_name"]
    targets = record["targets"] if targets is None else targets
    if name in SIZES:
        how = "likelihood" if targets == 0 else f"LoRA {targets} targets"
        return f"LLMRanker[{how},list], {SIZE_LABELS[name]}"
    if targets != record["targets"]:
        raise ValueError("the long run's points other than the last have no model name of their own")
    return MODEL_NAMES[name]


def prior_per_user(record: dict, targets: int, ks=(1, 5, 10)):
    """A size record's prior-alone control (the list prompt's header, no film of the user's) after
    ``targets`` (0: zero-shot), per test user, as :func:`per_user`."""
    import pandas as pd

    from .evaluate.metrics import rank_metrics

    ranks = record["controls"]["prior_alone"].get(str(targets))
    if ranks is None:
        raise KeyError(f"no prior-alone control after {targets} targets; the record has "
                       f"{sorted(record['controls']['prior_alone'])}")
    return pd.DataFrame(rank_metrics(np.asarray(ranks), ks), index=pd.Index(record["test_users"], name="user"))


def per_user(record: dict, targets: int, stage: str = "test", ks=(1, 5, 10)):
    """The per-user metrics of the record's point after ``targets`` targets (0: zero-shot), as an
    evaluator's ``per_user`` frame (index: the users)."""
    import pandas as pd

    from .evaluate.metrics import rank_metrics

    point = next((p for p in record["points"] if p["targets"] == targets), None)
    if point is None:
        raise KeyError(f"no point after {targets} targets; the record has {[p['targets'] for p in record['points']]}")
    users = pd.Index(record[f"{stage}_users"], name="user")
    return pd.DataFrame(rank_metrics(np.asarray(point[stage]["ranks"]), ks), index=users)


def eval_result(record: dict, targets: int | None = None, stage: str = "test", ks=(1, 5, 10)):
    """The record's point after ``targets`` targets (default: the last) as an evaluator's result on
    protocol P2, named by :func:`model_name`."""
    from .evaluate.protocols import EvalResult

    targets = record["targets"] if targets is None else targets
    frame = per_user(record, targets, stage, ks)
    ranks = np.asarray(next(p for p in record["points"] if p["targets"] == targets)[stage]["ranks"])
    return EvalResult("P2", model_name(record, targets), frame.index.to_numpy(), ranks, frame, tuple(ks), stage, 20)


def curve(record: dict, stage: str = "test", n_bootstrap: int = 1000, seed: int = 0):
    """One row per kept point: targets, share of the training titles, seconds of fine-tuning,
    NDCG@10 and its 95% bootstrap interval over the users."""
    import pandas as pd

    from .evaluate import bootstrap_ci

    rows = []
    for p in record["points"]:
        mean, low, high = bootstrap_ci(per_user(record, p["targets"], stage)["NDCG@10"].to_numpy(), n_bootstrap,
                                       seed=seed)
        rows.append({"targets": p["targets"], "share": p["share"], "seconds": p["seconds"],
                     "ndcg10": float(mean), "low": float(low), "high": float(high)})
    return pd.DataFrame(rows)


def plateau(record: dict, stage: str = "test", alpha: float = 0.05, seed: int = 0) -> dict:
    """Where the curve flattens: its best fine-tuned point, and the first kept point from which on
    no point's NDCG@10 is significantly below the best one's (paired permutation tests on the
    same users, Holm over the points compared)."""
    fine = [p["targets"] for p in record["points"] if p["targets"] > 0]
    return plateau_of({k: per_user(record, k, stage)["NDCG@10"] for k in fine}, alpha, seed)


def plateau_of(ndcg: dict, alpha: float = 0.05, seed: int = 0) -> dict:
    """:func:`plateau` of any learning curve: ``ndcg`` maps each kept point's targets to its
    per-user NDCG@10 (a Series over the same users)."""
    from .report.compare import holm
    from .evaluate import paired_test

    fine = sorted(ndcg)
    best = max(fine, key=lambda k: ndcg[k].mean())
    others = [k for k in fine if k != best]
    tests = [paired_test(ndcg[best], ndcg[k], seed=seed) for k in others]
    adjusted = dict(zip(others, holm([t["p_value"] for t in tests]))) if tests else {}
    below = [k for k in others if adjusted[k] < alpha]  # significantly below the best point
    first = next((k for k in fine if not any(b >= k for b in below)), None)  # None: the last point is below
    return {"best": best, "best_ndcg10": float(ndcg[best].mean()), "first_not_below": first,
            "p_holm": {int(k): float(v) for k, v in adjusted.items()}}


def plateau_words(flat: dict, last: int) -> str:
    """:func:`plateau`'s finding in words, for a curve whose last kept point is ``last`` targets."""
    first = flat["first_not_below"]
    if first is None:
        return ("the last kept point is significantly below that best one (Holm over the points): more of the "
                "same data lowered it.")
    if first == last:
        return ("the kept point before it is significantly below it (Holm over the points): the curve is still "
                "rising at the end of the data.")
    if flat["best"] == last:
        return (f"from {first:,} targets on, no kept point is significantly below that best one, the last (Holm "
                f"over the points): the rise after {first:,} targets is not significant, so these users cannot "
                f"say whether more data would lift it further.")
    return (f"from {first:,} targets on, no kept point is significantly below that best one (Holm over the "
            f"points): the curve is flat from there, and more of the same data does not lift it.")


def search_table(search: dict):
    """The settings search for the long run (``book/tuning/LoRA-whole.json``) as a table: one row
    per setting tried (the zero-shot prompts first), its validation NDCG@10 with the mean score,
    its 95% interval and paired p-value against the best row, with the summed score, and its
    training seconds."""
    import pandas as pd

    from .report.compare import fmt, fmt_ci, fmt_p, tidy
    from .report.tuning import zero_shot_label

    def label(entry):
        if entry.get("zero_shot"):
            return zero_shot_label(entry)
        text = f"lr {entry['lr']:g}, window {entry['window']}"
        if entry["objective"] != "lm":
            text += f", {_LOSSES[entry['objective']]} loss, {entry['targets']:,} targets"
        return text + ("" if entry.get("within_budget", True) else " (over budget)")

    rows = {}
    order = sorted(search["results"].values(), key=lambda e: (not e.get("zero_shot"), e.get("window", 0),
                                                                e.get("objective", ""), -e.get("lr", 0)))
    for entry in order:
        e = entry["mean"]
        row = {"mean score": fmt(e["valid_ndcg10"]), "95% interval": fmt_ci(e["ci_low"], e["ci_high"]),
               "p vs best": fmt_p(e["p_vs_best"]) if "p_vs_best" in e else "best",
               "sum score": fmt(entry["sum"]["valid_ndcg10"]),
               "training (s)": fmt(entry["train_seconds"]) if "train_seconds" in entry else "–"}
        rows[label(entry)] = row
    return tidy(pd.DataFrame.from_dict(rows, orient="index"))


def carry_over(records: dict, seed: int = 0) -> dict:
    """Whether the choice made at the proxy length held over the whole pass: the two long runs
    (``chosen`` and ``book``) on the same validation users at their last point, with a paired
    test (chosen minus book)."""
    from .evaluate import paired_test

    a, b = (per_user(records[n], records[n]["targets"], "valid")["NDCG@10"] for n in ("chosen", "book"))
    return {"chosen": float(a.mean()), "book": float(b.mean()), **paired_test(a, b, seed=seed)}


def carry_over_words(held: dict) -> str:
    """:func:`carry_over`'s finding in words: whether the proxy's choice held at the whole length."""
    from .report.compare import fmt, fmt_p

    verdict = ("the choice held" if held["mean_diff"] > 0 and held["p_value"] < 0.05 else
               "the choice made at the proxy length did not hold at the whole length, where the book's settings "
               "are better on validation" if held["mean_diff"] < 0 and held["p_value"] < 0.05 else
               "at the whole length the two are not significantly different on validation, so the proxy's choice "
               "is not confirmed there")
    return (f"{fmt(held['chosen'])} against {fmt(held['book'])} for the book's settings "
            f"({held['mean_diff']:+.3f}, paired p {fmt_p(held['p_value'])}): {verdict}")


def versions() -> dict:
    """Python's version and the versions of the packages that make the run's numbers."""
    from .report.environment import package_version, python_version

    return {"python": python_version(),
            **{name: package_version(name) for name in ("torch", "transformers", "peft", "numpy", "recnotes")}}


def size_comparison(record: dict, smol: dict | None = None, check: dict | None = None, seed: int = 0):
    """What chapter 6 says of a second size's record: ``(table, facts, answer)``.

    ``table``: paired tests (Holm over its rows, each the first model minus the second) of the
    fine-tuned model against the zero-shot one, of each against the prior alone, and, given
    ``smol`` (the book's model on the record's users: ``{"zero-shot list": frame, "fine-tuned":
    frame}`` of per-user metrics), of each against the book's model.  ``facts``: the page's values
    and sentences by glue name (``gemma_*``), with ``check`` (:func:`check_rederived`'s result,
    None where the final adapters were not scored again); ``answer``: the landing page's line.
    """
    from .report.compare import fmt, fmt_count, fmt_p, paired_rows, verdict
    from .report.phrases import compared, signed

    zero, fine = (model_name(record, k) for k in (0, record["targets"]))
    users = {zero: per_user(record, 0), fine: per_user(record, record["targets"])}
    pairs = {"Gemma: fine-tuned vs zero-shot": (users[fine], users[zero])}
    if smol is not None:
        pairs |= {"zero-shot list: Gemma vs SmolLM2": (users[zero], smol["zero-shot list"]),
                  "fine-tuned: Gemma vs SmolLM2": (users[fine], smol["fine-tuned"])}
    pairs |= {f"Gemma {k}: with history vs prior alone": (users[n], prior_per_user(record, t))
              for k, n, t in (("zero-shot", zero, 0), ("fine-tuned", fine, record["targets"]))}
    table = paired_rows({k: (a["NDCG@10"], b["NDCG@10"]) for k, (a, b) in pairs.items()}, ("first", "second"),
                        seed=seed)
    st = {x["vs"]: x for x in table.attrs["tests"]}
    vs_smol = {when: st[f"{when}: Gemma vs SmolLM2"] for when in ("zero-shot list", "fine-tuned")} if smol else {}
    prior_add = {when: st[f"Gemma {when}: with history vs prior alone"] for when in ("zero-shot", "fine-tuned")}
    tops = record["controls"]["top_popular"]
    fine_ndcg = float(users[fine]["NDCG@10"].mean())
    facts = {
        "gemma_params_m": record["parameters"] / 1e6, "gemma_vocab": fmt_count(record["vocab"]),
        "gemma_targets": record["targets"], "gemma_rank": record["settings"]["rank"],
        "gemma_layers": record["settings"]["layers"], "gemma_blocks": record["blocks"],
        "gemma_minutes": record["train_seconds"] / 60, "gemma_machine": record["machine"].split(",")[0],
        "gemma_dtype": record["dtype"].replace("bfloat16", "bf16"),
        "gemma_zero": float(users[zero]["NDCG@10"].mean()), "gemma_fine": fine_ndcg,
        "gemma_fine_words": compared(st["Gemma: fine-tuned vs zero-shot"], "its zero-shot prompt", key="p_holm"),
        "gemma_vs_smol": ", and ".join(f"{when.removesuffix(' list')}, Gemma is {compared(t, 'it', key='p_holm')} "
                                       f"({signed(t['mean_diff'])} NDCG@10)" for when, t in vs_smol.items())
        if smol else "the comparison is made in the full profile only, where the record's users are this chapter's",
        "gemma_meaning": "" if not smol else
        "At this budget, twice the parameters do not change the answer." if all(
            verdict(t, key="p_holm").startswith("not") for t in vs_smol.values()) else
        "Size matters here, in the direction the table gives.",
        "gemma_prior_words": " and ".join(f"{signed(t['mean_diff'])} {when} (Holm-adjusted p {fmt_p(t['p_holm'])})"
                                          for when, t in prior_add.items()),
        "gemma_top_pop": f"{100 * tops['0']:.0f}% of the users zero-shot and "
                         f"{100 * tops[str(record['targets'])]:.0f}% fine-tuned",
        "gemma_rederived": f"on the first {check['users']} of those users, NDCG@10 {fmt(check['ndcg10_now'])} "
                           f"against the record's {fmt(check['ndcg10_record'])} on the same users, "
                           f"{100 * check['same_rank_share']:.0f}% of them at the same rank" if check else
                           "this check runs in the full profile on ML-100K (the record's users)",
    }
    answer = (f"A model twice as large (Gemma 3 270M), with the same recipe and budget, reaches {fmt(fine_ndcg)} "
              f"fine-tuned" + (f", {verdict(st['fine-tuned: Gemma vs SmolLM2'], key='p_holm')} from the smaller "
                               f"model's {fmt(float(smol['fine-tuned']['NDCG@10'].mean()))}." if smol else "."))
    return table, facts, answer


def save_peft(config, folder: Path, split) -> None:
    """The final adapters of ``config``'s run, in peft's format (``adapter_config.json`` and
    ``adapter_model.safetensors``, as the run kept them), copied into ``folder``."""
    import shutil

    from .llm_experiments import lora_run

    run = lora_run(config, split)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copyfile(run.adapters() / name, folder / name)


def load_peft_backend(folder: str | Path, llm_model: str | None = None):
    """The pinned model (or ``llm_model``) with the adapters of ``folder`` folded in
    (:func:`~recnotes.models.llm.finetune.with_adapters`): a plain causal LM."""
    from .models.llm import load_backend
    from .models.llm.finetune import with_adapters

    return with_adapters(load_backend(llm_model), folder)


def check_rederived(record: dict, users, ranks, tolerance: dict | None = None) -> dict:
    """Compare ranks computed now (``users``, ``ranks``) with the record's final point on the same
    users; raise ``AssertionError`` when they differ beyond ``tolerance`` (:data:`TOLERANCE`)."""
    tolerance = tolerance or TOLERANCE
    final = record["points"][-1]["test"]
    stored = dict(zip(record["test_users"], final["ranks"]))
    users = [int(u) for u in users]
    missing = [u for u in users if u not in stored]
    if missing:
        raise AssertionError(f"users {missing[:5]} are not in the long-run record")
    then = np.array([stored[u] for u in users])
    now = np.asarray(ranks)
    out = {"users": len(users), "ndcg10_record": ndcg10(then), "ndcg10_now": ndcg10(now),
           "same_rank_share": float((then == now).mean())}
    out["ndcg10_diff"] = out["ndcg10_now"] - out["ndcg10_record"]
    if abs(out["ndcg10_diff"]) > tolerance["ndcg10"] or out["same_rank_share"] < tolerance["same_rank_share"]:
        raise AssertionError(
            f"the committed adapters, scored again, give NDCG@10 {out['ndcg10_now']:.4f} against the record's "
            f"{out['ndcg10_record']:.4f} ({out['same_rank_share']:.0%} of users at the same rank); the tolerance "
            f"is {tolerance['ndcg10']} and {tolerance['same_rank_share']:.0%}")
    return out


def make_record(name: str, config, run, split, points: dict[str, dict], seconds: float,
                what: str = "chapter 6's LLM fine-tuned over every training title once, with adapters kept along the way",
                command: str | None = None) -> dict:
    """The committed record of a long run (see the module docstring)."""
    from .device import cpu_description, get_device, inference_dtype

    test, valid = points["test"], points["valid"]
    history = run.history
    step = max(1, len(history) // 200)  # about 200 rows of the training loss
    loss = [{"targets": h["targets"], "seconds": round(h["seconds"], 2),
             "loss": round(float(np.mean([g["loss"] for g in history[max(0, i - step + 1):i + 1]])), 4)}
            for i, h in enumerate(history) if (i + 1) % step == 0 or i + 1 == len(history)]
    rows = []
    for k in sorted(test):
        t_ranks, v_ranks = _ranks(test[k], split, "test"), _ranks(valid[k], split, "valid")
        rows.append({"targets": int(k), "share": k / run.train_targets,
                     "seconds": 0.0 if k == 0 else run.seconds_at(k),
                     "test": {"ranks": t_ranks.tolist(), "ndcg10": ndcg10(t_ranks)},
                     "valid": {"ranks": v_ranks.tolist(), "ndcg10": ndcg10(v_ranks)}})
    device = get_device(None)
    return {
        "what": what, "settings_name": name, "command": command or f"python -m recnotes.longrun --settings {name}",
        "settings": json.loads(json.dumps(asdict(config.settings()))),
        "reduce": SETTINGS[name]["reduce"] if name in SETTINGS else "mean",
        "machine": cpu_description(), "device": device.type, "dtype": str(inference_dtype(device)).removeprefix("torch."),
        "threads": 1, "versions": versions(), "finished": time.strftime("%Y-%m-%d"),
        # the last kept point (the whole pass: every target; a small profile's cap may end inside a step)
        "train_seconds": run.train_seconds, "seconds_total": seconds, "targets": rows[-1]["targets"],
        "train_targets": run.train_targets, "trainable_parameters": run.trainable_parameters,
        "test_users": [int(u) for u in test[0].users], "valid_users": [int(u) for u in valid[0].users],
        "candidates_seed": config.seed, "loss": loss, "points": rows,
        "adapters": {"folder": str(RECORD_DIR / _stem(name)), "targets": run.targets},
    }


def size_controls(config, split, test: dict, n_users: int | None) -> dict:
    """A size record's controls on the test users: the prior alone (the header, no film of the
    user's) for the zero-shot prompt and the final adapters, and the share of users whose top
    candidate is the most popular of their 20 (training interactions)."""
    from .models.llm import top_agreement, train_popularity

    final = max(test)
    prior = point_scores(config, split, "test", n_users, progress=True, watched=True, prior=True, points=(0, final))
    popularity = train_popularity(split.histories("test"), split.n_items)  # as chapter 6 counts it
    return {"prior_alone": {str(k): _ranks(r, split, "test").tolist() for k, r in prior.items()},
            "top_popular": {str(k): top_agreement(r.scores, r.items, popularity) for k, r in test.items()}}


def run_size(name: str, profile: str | None, seed: int, root: Path) -> Path:
    """Fine-tune the pinned model ``name`` of :data:`SIZES` with chapter 6's in-budget recipe, score
    the zero-shot list prompt and every kept point (test and validation users, as the long run),
    the controls (:func:`size_controls`), and write its record and final adapters."""
    from .experiments import load_split
    from .llm_experiments import lora_run
    from .profiles import get_profile

    start = time.perf_counter()
    split = load_split("ml-100k")
    config = size_config(name, seed=seed, profile=profile)
    print(f"{SIZES[name]}: fine-tuning over {config.settings().n_targets:,} targets ({config.profile} profile); "
          f"an interrupted run resumes from its checkpoint", flush=True)
    run = lora_run(config, split, progress=True)
    n_test = get_profile(config.profile).p2_users
    points = {"test": point_scores(config, split, "test", n_test, progress=True, watched=True),
              "valid": point_scores(config, split, "valid", VALID_USERS if config.profile == "full" else None,
                                    progress=True)}
    controls = size_controls(config, split, points["test"], n_test)
    command = f"python -m recnotes.longrun --size {name}" + ("" if config.profile == "full" else f" --profile {config.profile}")
    record = make_record(name, config, run, split, points, time.perf_counter() - start,
                         what=f"chapter 6's in-budget fine-tuning, unchanged, on a second model: {SIZES[name]}",
                         command=command)
    from .models.llm import load_backend

    backend = load_backend(SIZES[name])
    record |= {"model": SIZES[name], "origin": backend.origin, "parameters": backend.describe()["parameters"],
               "blocks": backend.describe()["blocks"], "vocab": int(backend.model.config.vocab_size),
               "controls": controls}
    if config.profile != "full":
        record["profile"] = config.profile
    path = record_path(name, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_peft(config, adapters_dir(name, root), split)
    path.write_text(json.dumps(record, indent=1) + "\n")
    _print(record, path)
    return path


def _print(record: dict, path: Path) -> None:
    for row in record["points"]:
        print(f"{row['targets']:>7,} targets  {row['seconds']:7.0f} s  test NDCG@10 {row['test']['ndcg10']:.4f}"
              f"  valid {row['valid']['ndcg10']:.4f}")
    print(f"{path} ({' '.join(shlex.quote(a) for a in sys.argv)})")


def main(argv: list[str] | None = None) -> int:
    import torch

    from .experiments import load_split
    from .llm_experiments import lora_run
    from .profiles import get_profile

    parser = argparse.ArgumentParser(prog="python -m recnotes.longrun", description=__doc__.split("\n")[0])
    parser.add_argument("--settings", default="chosen", choices=sorted(SETTINGS))
    parser.add_argument("--size", default=None, choices=sorted(SIZES),
                        help="instead: chapter 6's in-budget recipe on this second pinned model")
    parser.add_argument("--profile", default=None, help="full (the record) | ci | smoke")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", type=Path, default=ROOT, help="where book/longrun is (default: this checkout)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.size:
        run_size(args.size, args.profile, args.seed, args.root)
        return 0
    start = time.perf_counter()
    split = load_split("ml-100k")
    config = whole_config(args.settings, seed=args.seed, profile=args.profile, split=split)
    print(f"fine-tuning over {config.tuning.n_targets:,} targets ({config.profile} profile: "
          f"{config.settings().n_targets:,}); an interrupted run resumes from its checkpoint", flush=True)
    run = lora_run(config, split, progress=True)
    print(f"trained: {run.targets:,} targets in {run.train_seconds:.0f} s; scoring the kept points", flush=True)
    # the test users as chapter 6 scores them (its list runs score a watched film too: the same inputs);
    # their number named, so that the zero-shot run is not the cache entry of chapter 6's own (timed) one
    reduce = SETTINGS[args.settings]["reduce"]
    n_test = get_profile(config.profile).p2_users
    points = {"test": point_scores(config, split, "test", n_test, progress=True, watched=True, reduce=reduce),
              "valid": point_scores(config, split, "valid", VALID_USERS if config.profile == "full" else None,
                                    progress=True, reduce=reduce)}
    record = make_record(args.settings, config, run, split, points, time.perf_counter() - start)
    if config.profile != "full":
        record["profile"] = config.profile
    path = record_path(args.settings, args.root)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_peft(config, adapters_dir(args.settings, args.root), split)
    path.write_text(json.dumps(record, indent=1) + "\n")
    _print(record, path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
