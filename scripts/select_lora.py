"""Choose the LoRA fine-tuning settings of chapter 6 on validation candidates only.

Each setting fine-tunes the pinned LLM on the first ``--targets`` targets of the
shuffled training windows (:mod:`recnotes.models.llm.finetune`) and ranks the
validation-stage P2 candidates (each user's second-to-last film and 19 unwatched
films, seed 1) of ``--users`` users, with both scores of a candidate: the mean
log-probability per token of its line and the summed one (one pass: the sum,
and each line's number of tokens).  The zero-shot list prompt is the reference.
Each entry has its NDCG@10, a 95% bootstrap interval and a paired test against
the best entry.  The results are merged into ``book/tuning/LoRA.json`` (one entry
per setting), so that a setting can be added without re-running the others:

    PYTHONPATH=src python scripts/select_lora.py --settings 5e-4:8 2e-3:8 8e-3:8

A setting is ``LR:LAYERS`` or ``LR:LAYERS:OBJECTIVE:TARGETS``: the objective ``rank`` or
``lm+rank`` (a softmax of each target line against ``--negatives`` sampled lines) costs more
per target, so it is compared at about the same CPU seconds, with fewer targets.
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


def _both(ranker, split, cands) -> dict[str, np.ndarray]:
    """Per-user NDCG@10 with the mean and with the summed log-probability (one scoring pass)."""
    from recnotes.evaluate.metrics import rank_metrics

    ranker.reduce = "sum"
    hist = split.histories("valid")
    sums = ranker.score_candidates([hist[u] for u in cands.users], cands.items).numpy()
    lengths = np.array([[len(ids) for ids in ranker.backend.continuation_ids(
        [ranker.continuations([c], [0])[0] for c in row])] for row in cands.items], dtype=float)
    out = {}
    for reduce, scores in (("sum", sums), ("mean", sums / lengths)):
        target = scores[np.arange(len(scores)), cands.target_pos][:, None]
        ranks = (scores > target).sum(axis=1)  # 0-based; ties counted in the target's favour
        out[reduce] = np.asarray(rank_metrics(ranks, (10,))["NDCG@10"], dtype=float)
    return out


def main(argv: list[str] | None = None) -> int:
    from recnotes.device import cpu_description
    from recnotes.evaluate import bootstrap_ci, paired_test, sample_candidates
    from recnotes.experiments import load_split
    from recnotes.models.llm import HFBackend, LLMRanker, item_titles
    from recnotes.models.llm.finetune import FineTunedLLMRanker, LoRASettings

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", nargs="*", default=[],
                        help="LR:LAYERS or LR:LAYERS:OBJECTIVE:TARGETS, e.g. 2e-3:8 or 8e-3:8:lm+rank:500")
    parser.add_argument("--negatives", type=int, default=4)
    parser.add_argument("--targets", type=int, default=2000)
    parser.add_argument("--window", type=int, default=20)
    parser.add_argument("--users", type=int, default=100)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    split = load_split()
    titles = item_titles(split.data)
    cands = sample_candidates(split, n_users=args.users, seed=1, stage="valid")
    backend = HFBackend.from_pretrained()
    what = "LoRA settings of chapter 6 (sequence fine-tuning), chosen on validation-stage P2 candidates"
    record = json.loads(RECORD.read_text()) if RECORD.is_file() else {}
    if record.get("what") != what or record.get("targets") != args.targets:
        record = {"what": what, "targets": args.targets, "window": args.window, "users": args.users,
                  "candidates_seed": 1, "stage": "valid", "machine": cpu_description(),
                  "dtype": str(next(backend.model.parameters()).dtype).removeprefix("torch."),
                  "per_user": {}, "results": {}}
    if "zero-shot" not in record["results"]:
        ranker = LLMRanker(backend, titles, template="list", max_history=args.window - 1)
        record["per_user"]["zero-shot"] = {k: v.tolist() for k, v in _both(ranker, split, cands).items()}
        record["results"]["zero-shot"] = {}
    for spec in args.settings:
        parts = spec.split(":")
        lr, layers = float(parts[0]), int(parts[1])
        objective = parts[2] if len(parts) > 2 else "lm"
        targets = int(parts[3]) if len(parts) > 3 else args.targets
        settings = LoRASettings(window=args.window, n_targets=targets, keep=(targets,), lr=lr,
                                layers=layers, objective=objective, negatives=args.negatives)
        start = time.perf_counter()
        tuned = FineTunedLLMRanker(backend, titles, settings).fit(split, progress=False)
        key = f"lr={lr:g},layers={layers}"
        if objective != "lm":
            key += f",objective={objective},negatives={args.negatives},targets={targets}"
        record["results"][key] = {"lr": lr, "layers": layers, "objective": objective, "targets": tuned.targets_seen,
                                  "train_seconds": time.perf_counter() - start,
                                  "last_loss": tuned.history[-1]["loss"]}
        if objective != "lm":
            record["results"][key]["negatives"] = args.negatives
        record["per_user"][key] = {k: v.tolist() for k, v in _both(tuned, split, cands).items()}
        print(key, {k: float(np.mean(v)) for k, v in record["per_user"][key].items()}, flush=True)
        _summarise(record, bootstrap_ci, paired_test)
        RECORD.parent.mkdir(parents=True, exist_ok=True)
        RECORD.write_text(json.dumps(record, indent=1) + "\n")
    _summarise(record, bootstrap_ci, paired_test)
    RECORD.write_text(json.dumps(record, indent=1) + "\n")
    return 0


def _summarise(record: dict, bootstrap_ci, paired_test) -> None:
    """NDCG@10 with its interval per entry and scoring, and each against the best (paired)."""
    flat = {(key, reduce): np.asarray(v) for key, per in record["per_user"].items() for reduce, v in per.items()}
    best = max(flat, key=lambda k: flat[k].mean())
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
