"""Time the book's costly steps on a CUDA GPU (and, for testing, anywhere).

    PYTHONPATH=src python scripts/gpu_check.py [--device cuda] [--out FOLDER] [--quick]

1. **GPTRec on ML-100K**: the default config and the largest configuration the
   tuning search tried (``book/tuning/GPTRec.json``), seed 0, trained to early
   stopping (bf16 autocast and fused attention on CUDA): seconds to the best
   epoch, seconds per epoch, validation and test NDCG@10.
2. **The LLM**: the pinned SmolLM2-135M-Instruct when its weights are in the
   cache; otherwise (a machine that cannot download and has no copy) a model of
   the same architecture with random weights, built from its configuration alone,
   and a word-level tokenizer built from the film titles (so titles have fewer
   tokens than with the real one: the token counts are printed).
   * batched P2 scoring of 200 users x 20 candidates (completion prompt) with
     the packed scorer at several users per pass, beside the shared-prefix path;
   * correctness: the packed scorer against the naive one, in float32 and in bf16,
     with stated tolerances (``TOLERANCE``);
   * LoRA sequence fine-tuning with the long run's configuration (``recnotes.longrun``,
     the settings chosen for the whole length) for one pass over *all* training
     targets, at its batch of 4 windows and at 32: seconds and targets per second
     (``--quick``: a few windows, on any device).

Data: ML-100K from the recnotes cache (``RECNOTES_CACHE``); carry a cache folder
holding ``ml-100k/`` where nothing can be downloaded.  Everything is printed and
written as JSON to ``--out`` (default ``./gpu_check``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

#: SmolLM2-135M-Instruct's architecture (its config.json), for a model with random weights
SMOLLM2_135M = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                    num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                    rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True, hidden_act="silu",
                    bos_token_id=1, eos_token_id=2, pad_token_id=2)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def log(*args) -> None:
    print(*args, flush=True)


# ------------------------------------------------------------------ GPTRec
def largest_searched() -> dict | None:
    """The tuning record's trial with the most parameters x sequence length."""
    path = ROOT / "book" / "tuning" / "GPTRec.json"
    if not path.is_file():
        return None
    trials = json.loads(path.read_text())["trials"]
    size = lambda p: p["dim"] ** 2 * p["n_layers"] * p.get("ffn_mult", 4) * p["max_len"]  # noqa: E731
    return max((t["params"] for t in trials), key=size)


def gptrec(device: torch.device, quick: bool) -> list[dict]:
    from recnotes.evaluate import evaluate_full
    from recnotes.experiments import GPTRecConfig, load_split, run

    split = load_split("ml-100k")
    configs = {"default": {}}
    big = largest_searched()
    if big is not None:
        configs["largest searched"] = dict(big, decay_epochs=big.get("max_epochs", 40))
    out = []
    for label, params in configs.items():
        cfg = GPTRecConfig(seed=0, profile="smoke" if quick else "full", **params)
        sync(device)
        start = time.perf_counter()
        r = run(cfg, split, cache=False, progress=False, device=device)
        sync(device)
        wall = time.perf_counter() - start
        t0 = time.perf_counter()
        test = evaluate_full(r.model, split, stage="test", ks=(10,))
        sync(device)
        row = {"config": label, "params": params, "train_seconds": wall, "seconds_to_best": r.seconds_to_best,
               "best_epoch": r.best_epoch, "epochs": len(r.history),
               "seconds_per_epoch": float(np.mean([h["seconds"] for h in r.history])),
               "valid_ndcg10": max(h["valid_ndcg10"] for h in r.history),
               "test_ndcg10": float(test.per_user["NDCG@10"].mean()),
               "eval_seconds_all_users": time.perf_counter() - t0}
        log(f"GPTRec {label}: {row['seconds_to_best']:.1f} s to the best epoch ({row['best_epoch']} of "
            f"{row['epochs']}), {row['seconds_per_epoch']:.2f} s/epoch, valid NDCG@10 {row['valid_ndcg10']:.4f}, "
            f"test {row['test_ndcg10']:.4f}, evaluation of all users {row['eval_seconds_all_users']:.2f} s")
        out.append(row)
    return out


# ------------------------------------------------------------------ the LLM
def word_tokenizer(titles: list[str]):
    """A word-level tokenizer over the titles' words (a stand-in where the real one is absent)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    split = pre_tokenizers.Whitespace()
    text = " ".join(titles) + " Films I watched, oldest first: The next film I watched:"
    words = sorted({w for w, _ in split.pre_tokenize_str(text)})
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2} | {w: i + 3 for i, w in enumerate(words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = split
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="</s>")


def llm_backend(device: torch.device, titles: list[str], random_weights: bool = False):
    """The pinned model if its weights are here, else a random model of its architecture."""
    from recnotes.models.llm import HFBackend

    from recnotes.device import inference_dtype

    dtype = inference_dtype(device) if device.type == "cuda" else torch.float32
    if not random_weights:
        try:
            backend = HFBackend.from_pretrained(device=device, dtype=dtype)
            return backend, "pinned SmolLM2-135M-Instruct weights"
        except Exception as err:  # noqa: BLE001 - no weights here: build the architecture alone
            log(f"pinned LLM not available ({type(err).__name__}); using random weights of its architecture")
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(**SMOLLM2_135M)
    config._attn_implementation = "sdpa"
    model = LlamaForCausalLM(config).to(device=device, dtype=dtype)
    return HFBackend(model, word_tokenizer(titles), name="random SmolLM2-135M architecture",
                     device=device), "random weights, word-level tokenizer"


def llm(device: torch.device, quick: bool, random_weights: bool = False) -> dict:
    from recnotes.evaluate import sample_candidates
    from recnotes.experiments import load_split
    from recnotes.models.llm import LLMRanker, item_titles
    from recnotes.models.llm.finetune import FineTunedLLMRanker

    split = load_split("ml-100k")
    titles = item_titles(split.data)
    backend, weights = llm_backend(device, titles, random_weights)
    n_users = 4 if quick else 200
    cands = sample_candidates(split, n_users=n_users, seed=0)
    hist = split.histories("test")
    histories = [hist[u] for u in cands.users]
    out: dict = {"weights": weights, "dtype": str(next(backend.model.parameters()).dtype), "users": n_users}
    scoring = {}
    for label, scorer, batch in [("shared prefix", "shared", 1), ("packed, 1 user/pass", "packed", 1),
                                 ("packed, 8 users/pass", "packed", 8), ("packed, 32 users/pass", "packed", 32)]:
        ranker = LLMRanker(backend, titles, template="completion", scorer=scorer, batch_users=batch)
        users = n_users if scorer == "packed" else min(n_users, 32)
        ranker.score_candidates(histories[:2], cands.items[:2])  # warm up
        ranker.reset_stats()
        sync(device)
        start = time.perf_counter()
        ranker.score_candidates(histories[:users], cands.items[:users])
        sync(device)
        seconds = time.perf_counter() - start
        scoring[label] = {"users": users, "users_per_second": users / seconds,
                          "tokens_per_user": ranker.stats.tokens_per_user}
        log(f"P2 scoring, {label}: {users / seconds:.1f} users/s ({ranker.stats.tokens_per_user:.0f} tokens/user)")
    out["scoring"] = scoring
    out["correctness"] = correctness(backend, titles, histories[:4 if quick else 16], cands.items[:4 if quick else 16])
    # the long run's configuration (recnotes.longrun, the settings chosen for the whole length):
    # one pass over every training title (quick: a few windows)
    from dataclasses import replace

    from recnotes.longrun import whole_config

    total = sum(len(seq) for seq in split.train)
    n_targets = 60 if quick else total
    chosen = whole_config("chosen", profile="full", split=split).settings()
    out["lora_settings"] = {"lr": chosen.lr, "rank": chosen.rank, "layers": chosen.layers, "window": chosen.window}
    for batch in ((4,) if quick else (4, 32)):
        settings = replace(chosen, n_targets=n_targets, keep=(n_targets,), batch_size=batch)
        tuned = FineTunedLLMRanker(backend, titles, settings)
        sync(device)
        start = time.perf_counter()
        tuned.fit(split, progress=False)
        sync(device)
        seconds = time.perf_counter() - start
        out[f"lora_epoch_batch_{batch}"] = {"targets": tuned.targets_seen, "train_targets": total,
                                            "seconds": seconds, "targets_per_second": tuned.targets_seen / seconds,
                                            "final_loss": tuned.history[-1]["loss"]}
        log(f"LoRA sequence fine-tuning, {batch} windows/step: {tuned.targets_seen / seconds:.1f} targets/s "
            f"({tuned.targets_seen:,} of {total:,} training targets in {seconds:.1f} s, "
            f"last loss {tuned.history[-1]['loss']:.3f})")
    return out


#: largest |packed - naive| allowed per dtype (mean log-probability per token; bf16 rounds the
#: hidden states differently along the two paths, float32 only sums in another order; float16,
#: the inference dtype of cards without native bf16, keeps 3 more mantissa bits than bf16)
TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 0.1, torch.float16: 0.02}


def correctness(backend, titles, histories, items) -> dict:
    """The packed scorer against the naive one (each candidate with its own prompt), in float32,
    in bf16 and in the device's inference dtype, on the backend's device."""
    import copy

    from recnotes.device import inference_dtype
    from recnotes.models.llm import HFBackend, LLMRanker

    out = {}
    for dtype in dict.fromkeys((torch.float32, torch.bfloat16, inference_dtype(backend.device))):
        model = copy.deepcopy(backend.model).to(dtype=dtype)
        other = HFBackend(model, backend.tokenizer, name=backend.name, device=backend.device)
        packed = LLMRanker(other, titles, template="list", max_history=19, batch_users=4).score_candidates(
            histories, items)
        naive = LLMRanker(other, titles, template="list", max_history=19, scorer="naive").score_candidates(
            histories, items)
        err = float((packed - naive).abs().max())
        name = str(dtype).removeprefix("torch.")
        out[name] = {"max_abs_diff": err, "tolerance": TOLERANCE[dtype], "ok": err <= TOLERANCE[dtype]}
        log(f"packed vs naive scorer, {name}: max |diff| {err:.2e} (tolerance {TOLERANCE[dtype]:g}): "
            f"{'ok' if err <= TOLERANCE[dtype] else 'FAILED'}")
        del model, other
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--out", type=Path, default=Path("gpu_check"))
    parser.add_argument("--quick", action="store_true", help="small sizes (to test the script itself)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["gptrec", "llm"])
    parser.add_argument("--random-llm", action="store_true",
                        help="use random weights of the LLM's architecture even where the pinned ones are")
    args = parser.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    os.environ.setdefault("RECNOTES_PROGRESS", "0")
    from recnotes.device import cpu_description, precision

    policy = precision(device)
    report: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_description(),
                    "torch": torch.__version__, "python": platform.python_version(), "quick": args.quick,
                    "precision": {"autocast": str(policy.autocast), "head": str(policy.head),
                                  "inference": str(policy.inference), "loss_scaling": policy.loss_scaling,
                                  "reason": policy.reason}}
    log(f"gpu_check on {report['device']} (torch {torch.__version__}); precision: {policy.reason}")
    if "gptrec" not in args.skip:
        report["gptrec"] = gptrec(device, args.quick)
    if "llm" not in args.skip:
        report["llm"] = llm(device, args.quick, args.random_llm)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str))
    log(f"written {args.out / 'gpu_check.json'}")
    failed = [k for k, v in report.get("llm", {}).get("correctness", {}).items() if not v["ok"]]
    if failed:
        log(f"the packed scorer differs from the naive one beyond the tolerance in: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
