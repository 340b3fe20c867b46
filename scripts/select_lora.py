"""Choose the LoRA fine-tuning settings of chapter 6 on validation candidates only.

Each setting fine-tunes the pinned LLM on the first ``targets`` targets of the
shuffled training windows (:mod:`recnotes.models.llm.finetune`) and ranks the
validation-stage P2 candidates (each user's second-to-last film and 19 unwatched
films, seed 1) of ``--users`` users, with both scores of a candidate: the mean
log-probability per token of its line and the summed one (one pass: the sum,
and each line's number of tokens).  The zero-shot prompts (the list and the
completion format) are the reference rows.  Each entry has its NDCG@10, a 95%
bootstrap interval and a paired test against the best entry.  The results are
merged into ``book/tuning/LoRA.json`` (one entry per setting, with every setting
it was trained with), so that a setting can be added without re-running the others:

    PYTHONPATH=src python scripts/select_lora.py --settings lr=2e-3 lr=8e-3,layers=16 window=40

A setting is a comma-separated list of ``FIELD=VALUE`` (fields: ``lr``, ``layers``,
``rank``, ``window``, ``objective``, ``targets``); a field it does not name takes the
centre of the search (``--centre``, by default the settings of the first search).  The
objective ``rank`` or ``lm+rank`` (a softmax of each target line against ``--negatives``
sampled lines) costs more per target, so it is compared at about the same CPU seconds, with
fewer ``targets``.  ``--zero-shot`` adds the zero-shot rows.  ``--fresh`` starts a new record
(the old one is replaced when the budget or the machine's precision differ anyway).

Settings can be run side by side, one process per core, each into its own ``--record``;
``--merge`` then adds the entries of those records into this one (same number of targets,
users and precision) and recomputes every interval and test against the new best.
``--max-window`` states the book's CPU budget: a ranker's cost per user grows with its
prompt, so windows longer than it are scored and shown but not chosen:

    python scripts/select_lora.py --record /tmp/a.json --settings lr=2e-3 &
    python scripts/select_lora.py --record /tmp/b.json --settings lr=2e-2 &
    wait; python scripts/select_lora.py --merge /tmp/a.json /tmp/b.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "book" / "tuning" / "LoRA.json"
WHAT = "LoRA settings of chapter 6 (sequence fine-tuning), chosen on validation-stage P2 candidates"

#: the centre of the one-at-a-time search: each setting changes some of these
CENTRE = {"lr": 8e-3, "layers": 8, "rank": 8, "window": 20, "objective": "lm"}
FIELDS = {"lr": float, "layers": int, "rank": int, "window": int, "objective": str, "targets": int}


def parse_setting(spec: str, centre: dict, targets: int) -> dict:
    """``"lr=2e-3,layers=16"`` -> every field of the setting (the others from ``centre``)."""
    out = {**centre, "targets": targets}
    for part in filter(None, spec.split(",")):
        name, _, value = part.partition("=")
        if name not in FIELDS or not value:
            raise SystemExit(f"bad setting {spec!r}: use FIELD=VALUE with FIELD in {sorted(FIELDS)}")
        out[name] = FIELDS[name](value)
    return out


def key_of(setting: dict) -> str:
    """The entry's name in the record: every field, in one order."""
    return ",".join(f"{k}={setting[k]:g}" if isinstance(setting[k], float) else f"{k}={setting[k]}"
                    for k in (*CENTRE, "targets"))


def _both(ranker, split, cands) -> dict[str, np.ndarray]:
    """Per-user NDCG@10 with the mean and with the summed log-probability (one scoring pass)."""
    from recnotes.evaluate.metrics import rank_metrics

    ranker.reduce = "sum"
    hist = split.histories("valid")
    sums = ranker.score_candidates([hist[u] for u in cands.users], cands.items).numpy()
    lengths = np.array([[len(ids) for ids in ranker.backend.continuation_ids(
        [ranker.continuations([c], [0])[0] for c in row], end_token=ranker.end_token)] for row in cands.items],
        dtype=float)
    out = {}
    for reduce, scores in (("sum", sums), ("mean", sums / lengths)):
        target = scores[np.arange(len(scores)), cands.target_pos][:, None]
        ranks = (scores > target).sum(axis=1)  # 0-based; ties counted in the target's favour
        out[reduce] = np.asarray(rank_metrics(ranks, (10,))["NDCG@10"], dtype=float)
    return out


def tokens_per_user(ranker, split, cands) -> float:
    """The tokens a ranker reads per user (its prompt and every candidate's line): what its cost
    per user grows with, the same on any machine."""
    hist = split.histories("valid")
    total = 0
    for user, row in zip(cands.users, cands.items):
        history = [int(i) for i in np.asarray(hist[user]).ravel() if i != 0]
        total += len(ranker.backend.prompt_ids(ranker.prompt(history, row, np.arange(len(row)))))
        total += sum(len(ids) for ids in ranker.backend.continuation_ids(
            ranker.continuations(row, np.arange(len(row))), end_token=ranker.end_token))
    return total / len(cands.users)


def main(argv: list[str] | None = None) -> int:
    from recnotes.device import cpu_description
    from recnotes.evaluate import bootstrap_ci, paired_test, sample_candidates
    from recnotes.experiments import load_split
    from recnotes.models.llm import HFBackend, LLMRanker, item_titles
    from recnotes.models.llm.finetune import FineTunedLLMRanker, LoRASettings

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", nargs="*", default=[], help="e.g. lr=2e-3 layers=16 objective=rank,targets=400")
    parser.add_argument("--zero-shot", action="store_true", help="score the zero-shot list and completion prompts")
    parser.add_argument("--negatives", type=int, default=4)
    parser.add_argument("--micro-batch", type=int, default=None,
                        help="windows per forward pass (the step's gradient accumulated; less memory, same loss)")
    parser.add_argument("--targets", type=int, default=2000, help="targets per LM-loss setting (the budget)")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--fresh", action="store_true", help="start a new record")
    parser.add_argument("--record", type=Path, default=RECORD, help=f"default: {RECORD.relative_to(ROOT)}")
    parser.add_argument("--merge", nargs="*", type=Path, default=[], help="records whose entries to add")
    parser.add_argument("--max-window", type=int, default=None,
                        help="the budget: the longest window (prompt of window - 1 films) the book can afford; "
                             "longer ones are scored and shown, but not chosen")
    parser.add_argument("--budget-reason", default="", help="why the budget is what it is, for the record")
    parser.add_argument("--centre", default="", help="the centre's fields that differ from the first search's, "
                        "e.g. rank=4,window=40 (a setting names only what it changes)")
    parser.add_argument("--what", default=WHAT, help="what the record chooses (a new text starts a new record)")
    parser.add_argument("--count-tokens", action="store_true",
                        help="add the tokens read per user to the entries of --record that lack them")
    args = parser.parse_args(argv)
    if args.merge:
        return merge(args.record, args.merge, bootstrap_ci, paired_test, args.max_window, args.budget_reason)
    if args.count_tokens:
        return count_tokens(args.record)
    centre = {k: v for k, v in parse_setting(args.centre, CENTRE, args.targets).items() if k != "targets"}
    torch.set_num_threads(1)
    split = load_split()
    titles = item_titles(split.data)
    cands = sample_candidates(split, n_users=args.users, seed=1, stage="valid")
    backend = HFBackend.from_pretrained()
    dtype = str(next(backend.model.parameters()).dtype).removeprefix("torch.")
    record = json.loads(args.record.read_text()) if args.record.is_file() and not args.fresh else {}
    if (record.get("what"), record.get("targets"), record.get("users"), record.get("dtype"),
            record.get("version")) != (args.what, args.targets, args.users, dtype, 2):
        record = {"what": args.what, "version": 2, "targets": args.targets, "users": args.users, "centre": centre,
                  "negatives": args.negatives, "candidates_seed": 1, "stage": "valid",
                  "machine": cpu_description(), "dtype": dtype, "per_user": {}, "results": {}}

    def save() -> None:
        _summarise(record, bootstrap_ci, paired_test)
        args.record.parent.mkdir(parents=True, exist_ok=True)
        args.record.write_text(json.dumps(record, indent=1) + "\n")

    if args.zero_shot:
        for template, history in (("list", centre["window"] - 1), ("completion", 10)):
            key = f"zero-shot,template={template}"
            start = time.perf_counter()
            ranker = LLMRanker(backend, titles, template=template, max_history=history)
            record["per_user"][key] = {k: v.tolist() for k, v in _both(ranker, split, cands).items()}
            record["results"][key] = {"zero_shot": True, "template": template, "history": history,
                                      "score_seconds": time.perf_counter() - start,
                                      "tokens_per_user": tokens_per_user(ranker, split, cands)}
            print(key, {k: round(float(np.mean(v)), 4) for k, v in record["per_user"][key].items()}, flush=True)
            save()
    for spec in args.settings:
        s = parse_setting(spec, centre, args.targets)
        settings = LoRASettings(window=s["window"], n_targets=s["targets"], keep=(s["targets"],), lr=s["lr"],
                                layers=s["layers"], rank=s["rank"], alpha=2.0 * s["rank"], objective=s["objective"],
                                negatives=args.negatives)
        start = time.perf_counter()
        tuned = FineTunedLLMRanker(backend, titles, settings, micro_batch=args.micro_batch).fit(split, progress=False)
        trained = time.perf_counter() - start
        key = key_of(s)
        params = tuned.trainable_parameters()
        per_user = _both(tuned.merged(), split, cands)  # scored as chapter 6 scores: adapters merged
        record["results"][key] = {**s, "alpha": settings.alpha, "targets_seen": tuned.targets_seen,
                                  "train_seconds": trained, "score_seconds": time.perf_counter() - start - trained,
                                  "trainable_params": params, "last_loss": tuned.history[-1]["loss"],
                                  "tokens_per_user": tokens_per_user(tuned, split, cands)}
        record["per_user"][key] = {k: v.tolist() for k, v in per_user.items()}
        print(key, f"{trained:.0f} s", {k: round(float(np.mean(v)), 4) for k, v in per_user.items()}, flush=True)
        save()
    save()
    return 0


def count_tokens(path: Path) -> int:
    """Add ``tokens_per_user`` to the entries of the record at ``path`` that lack it (it depends on
    the window or prompt, the users and the candidates only, not on the adapters)."""
    from recnotes.evaluate import sample_candidates
    from recnotes.experiments import load_split
    from recnotes.models.llm import HFBackend, LLMRanker, item_titles

    record = json.loads(path.read_text())
    split = load_split()
    titles = item_titles(split.data)
    cands = sample_candidates(split, n_users=record["users"], seed=record["candidates_seed"], stage="valid")
    backend = HFBackend.from_pretrained()
    counted: dict[tuple[str, int], float] = {}
    for entry in record["results"].values():
        template = entry.get("template", "list")
        history = entry["history"] if entry.get("zero_shot") else entry["window"] - 1
        if (template, history) not in counted:
            ranker = LLMRanker(backend, titles, template=template, max_history=history)
            counted[template, history] = tokens_per_user(ranker, split, cands)
        entry.setdefault("tokens_per_user", counted[template, history])
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"{path}: tokens per user {sorted(set(counted.items()))}")
    return 0


def merge(target: Path, sources: list[Path], bootstrap_ci, paired_test, max_window: int | None = None,
          reason: str = "") -> int:
    """Add the entries of ``sources`` into the record at ``target`` (or the first source's record,
    when ``target`` does not exist), set the budget where given, and summarise again."""
    records = [json.loads(p.read_text()) for p in sources]
    record = json.loads(target.read_text()) if target.is_file() else {
        **records[0], "per_user": {}, "results": {}}
    if max_window is not None:
        record["budget"] = {"max_window": max_window, "reason": reason}
    same = ("what", "version", "targets", "users", "dtype", "centre", "negatives")
    for path, other in zip(sources, records):
        differ = [k for k in same if other.get(k) != record.get(k)]
        if differ:
            raise SystemExit(f"{path} differs from {target} in {', '.join(differ)}: not merged")
        record["per_user"].update(other["per_user"])
        record["results"].update({k: {f: v for f, v in e.items() if f not in ("mean", "sum")}
                                  for k, e in other["results"].items()})
    _summarise(record, bootstrap_ci, paired_test)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(record, indent=1) + "\n")
    print(f"{target}: {len(record['results'])} entries; best within the budget {record['best']}")
    return 0


def within_budget(record: dict, entry: dict) -> bool:
    """Whether a setting fits the book's CPU budget: its prompts hold at most ``max_window - 1``
    films (a ranker's cost per user grows with its prompt)."""
    limit = record.get("budget", {}).get("max_window")
    window = entry.get("window", (entry.get("history") or 0) + 1)
    return limit is None or window <= limit


def _summarise(record: dict, bootstrap_ci, paired_test) -> None:
    """NDCG@10 with its interval per entry and scoring, and each against the best (paired) of the
    entries within the budget."""
    flat = {(key, reduce): np.asarray(v) for key, per in record["per_user"].items() for reduce, v in per.items()}
    if not flat:
        return
    for key, entry in record["results"].items():
        entry["within_budget"] = within_budget(record, entry)
    best = max((k for k in flat if record["results"][k[0]]["within_budget"]), key=lambda k: flat[k].mean())
    for (key, reduce), values in flat.items():
        mean, lo, hi = bootstrap_ci(values, 1000, seed=0)
        entry = {"valid_ndcg10": float(mean), "ci_low": float(lo), "ci_high": float(hi)}
        if (key, reduce) != best:
            test = paired_test(values, flat[best], seed=0)
            entry.update(diff_vs_best=float(test["mean_diff"]), p_vs_best=float(test["p_value"]))
        record["results"][key][reduce] = entry
    record["best"] = {"setting": best[0], "reduce": best[1]}


if __name__ == "__main__":
    raise SystemExit(main())
