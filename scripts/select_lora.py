"""Choose the LoRA fine-tuning settings of chapter 6 on validation candidates only.

Each setting fine-tunes the pinned LLM on 256 training examples and ranks the
validation-stage P2 candidates (each user's second-to-last film and 19 unwatched
films, seed 1) of 100 users; the zero-shot completion prompt is the reference.
The results are merged into ``book/tuning/LoRA.json`` (one entry per setting), so
that a setting can be added without re-running the others:

    PYTHONPATH=src python scripts/select_lora.py --settings 3e-4:8 1e-3:8 3e-3:8 1e-2:8 3e-2:8 3e-3:30
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "book" / "tuning" / "LoRA.json"


def main(argv: list[str] | None = None) -> int:
    from recnotes.device import cpu_description
    from recnotes.evaluate import evaluate_candidates, sample_candidates
    from recnotes.experiments import load_split
    from recnotes.models.llm import HFBackend, LLMRanker, item_titles
    from recnotes.models.llm.finetune import FineTunedLLMRanker, LoRASettings

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", nargs="*", default=[], help="LR:LAYERS pairs, e.g. 1e-2:8")
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--users", type=int, default=100)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    split = load_split()
    titles = item_titles(split.data)
    cands = sample_candidates(split, n_users=args.users, seed=1, stage="valid")
    backend = HFBackend.from_pretrained()
    record = json.loads(RECORD.read_text()) if RECORD.is_file() else {
        "what": "LoRA settings of chapter 6, chosen on validation-stage P2 candidates",
        "examples": args.examples, "users": args.users, "candidates_seed": 1, "stage": "valid",
        "machine": cpu_description(), "results": {}}
    if "zero-shot" not in record["results"]:
        r = evaluate_candidates(LLMRanker(backend, titles, template="completion"), split, cands, "valid", ks=(10,))
        record["results"]["zero-shot"] = {"valid_ndcg10": float(r.per_user["NDCG@10"].mean())}
    for spec in args.settings:
        lr, layers = float(spec.split(":")[0]), int(spec.split(":")[1])
        settings = LoRASettings(n_examples=args.examples, keep=(args.examples,), lr=lr, layers=layers)
        start = time.perf_counter()
        tuned = FineTunedLLMRanker(backend, titles, settings).fit(split, progress=False)
        seconds = time.perf_counter() - start
        r = evaluate_candidates(tuned, split, cands, stage="valid", ks=(10,))
        record["results"][f"lr={lr:g},layers={layers}"] = {
            "lr": lr, "layers": layers, "valid_ndcg10": float(r.per_user["NDCG@10"].mean()),
            "train_seconds": seconds, "last_loss": tuned.history[-1]["loss"]}
        print(spec, record["results"][f"lr={lr:g},layers={layers}"], flush=True)
        RECORD.parent.mkdir(parents=True, exist_ok=True)
        RECORD.write_text(json.dumps(record, indent=1) + "\n")
    RECORD.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
