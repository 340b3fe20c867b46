"""The item-head LLM (:mod:`recnotes.models.llm.itemhead`) trained over the whole data: its
settings chosen on validation, then one long run committed as a record.

    python -m recnotes.itemhead_run search --settings lr=3e-3 head_lr=3e-2   # book/tuning/ItemHead.json
    python -m recnotes.itemhead_run whole                                    # book/longrun/itemhead.json

**The search** trains each setting on the first :data:`PROXY_TARGETS` targets of the shuffled
training windows (its learning rate decaying to zero there) and ranks the validation film of
the first :data:`VALID_USERS` users among every film (protocol P1, seen films masked).  A setting
is a comma-separated ``FIELD=VALUE`` list over :data:`CENTRE`; entries are merged into the record,
so settings can run side by side, one process per core, each into its own ``--record`` and
then ``--merge``-d.  The test split decides nothing.

**The long run** trains the best setting for one pass (or ``--passes N``) over every training
window (every training film but each user's first a target once a pass), its learning rate
decaying to zero at the end, checkpointing as it goes (an interrupted run resumes), and keeps
the model after :data:`KEEP` targets and at the end.  Each kept model ranks the same validation
films; the best of them on validation, over every run recorded (a run of another number of
passes stays in the record's ``other_runs``), is the one committed (``book/longrun/itemhead/``:
peft adapters and the item head in float16) and scored
on the test split: every user under P1 and chapter 6's users under P2, from the committed
files.  ``make book`` scores the committed model again on :data:`REDERIVE_USERS` of those users
(:func:`rederive`) and fails when it differs from the record by more than :data:`TOLERANCE`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .committed import RECORD_DIR, _root

#: the centre of the search (ItemHeadSettings fields); a setting changes some of them
CENTRE = {"lr": 1e-3, "head_lr": 1e-2, "layers": 4, "window": 20, "scale": 16.0, "center": False}
#: numbers of targets after which the long run keeps its model (and the end of the run); a pass
#: has about 97,000, so the last three belong to a run of two passes
KEEP = (4000, 16000, 32000, 64000, 97000, 128000, 160000)
#: a search run's length in training targets (the whole pass has about 97,000)
PROXY_TARGETS = 32000
#: a setting replaces the search's centre only if it beats it on validation at this level
#: (paired sign-flip test); otherwise the centre stays
TIE_ALPHA = 0.05
#: the users (the first of the split's) whose validation film ranks every setting and every kept point
VALID_USERS = 300
#: chapter 6's P2 users (its candidates: seed 0, 19 unwatched films each)
P2_USERS = 200
#: the users ``make book`` scores again (the first of chapter 6's P2 users: P1 and P2)
REDERIVE_USERS = 100
#: how far the re-scored committed model may be from the record: NDCG@10, and the share of
#: users whose target lands at the same place of the top 10 (or outside it in both).  Another
#: CPU's kernels move near-tied scores in their last bits, which swaps neighbours in a ranking
#: of every film
TOLERANCE = {"ndcg10": 0.02, "same_rank_share": 0.7}

NAME = "itemhead"
MODEL_NAME = "LLMItemHead"
SEARCH_RECORD = Path("book") / "tuning" / "ItemHead.json"
SEARCH_WHAT = ("settings of the item-head LLM for its long run over the training data, chosen on the validation "
               "film of the first users ranked among every film (P1, seen films masked) at a proxy length")
_FIELDS = {"lr": float, "head_lr": float, "layers": int, "window": int, "scale": float, "rank": int,
           "batch_size": int, "center": lambda v: bool(int(v))}


def record_path(root: Path | None = None) -> Path:
    return (root or _root()) / RECORD_DIR / f"{NAME}.json"


def model_dir(root: Path | None = None) -> Path:
    return (root or _root()) / RECORD_DIR / NAME


def parse_setting(spec: str, centre: dict | None = None) -> dict:
    """``"lr=3e-3,layers=8"`` -> every searched field (the others from ``centre``)."""
    out = dict(centre or CENTRE)
    for part in filter(None, spec.split(",")):
        name, _, value = part.partition("=")
        if name not in _FIELDS or not value:
            raise SystemExit(f"bad setting {spec!r}: use FIELD=VALUE with FIELD in {sorted(_FIELDS)}")
        out[name] = _FIELDS[name](value)
    return out


def setting_key(setting: dict) -> str:
    return ",".join(f"{k}={setting[k]:g}" if isinstance(setting[k], float) else f"{k}={setting[k]}"
                    for k in sorted(setting))


def _context(dataset: str = "ml-100k"):
    """The split, the pinned backend, the titles and the LLM's item vectors (cached on disk: a
    pass over every title)."""
    from .assets import cache_dir
    from .experiments import load_split
    from .models.llm import load_backend
    from .models.llm import item_titles
    from .models.llm.items import llm_item_vectors
    from .safeio import write_atomic

    split = load_split(dataset)
    backend = load_backend(None)
    titles = item_titles(split.data)
    path = cache_dir() / "itemhead" / f"vectors-{backend.name}-{dataset}-{len(titles)}.npy"
    if path.is_file():
        vectors = np.load(path)
    else:
        vectors = llm_item_vectors(backend, titles)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, lambda tmp: np.save(tmp.open("wb"), vectors))
    return split, backend, titles, vectors


def valid_ndcg(model, split, n_users: int | None = None) -> np.ndarray:
    """Per-user NDCG@10 of the validation film ranked among every film (P1, seen films masked) for
    the first ``n_users`` users."""
    from .evaluate import evaluate_full

    users = np.arange(min(VALID_USERS if n_users is None else n_users, split.n_users))
    return evaluate_full(model, split, stage="valid", users=users, ks=(10,), batch_size=64).per_user["NDCG@10"].to_numpy()


def _machine() -> dict:
    import torch

    from .device import cpu_description, get_device, inference_dtype
    from .longrun import versions

    device = get_device(None)
    return {"machine": cpu_description(), "device": device.type,
            "dtype": str(inference_dtype(device)).removeprefix("torch."), "threads": torch.get_num_threads(),
            "versions": versions()}


# ---------------------------------------------------------------- the search
def search(specs: list[str], record: Path, targets: int = PROXY_TARGETS, n_users: int = VALID_USERS) -> dict:
    """Train and validate each setting of ``specs``; merge the entries into ``record``."""
    from .models.llm.itemhead import ItemHeadLLM, ItemHeadSettings

    split, backend, titles, vectors = _context()
    out = json.loads(record.read_text()) if record.is_file() else {}
    out.update({"what": SEARCH_WHAT, "targets": targets, "users": n_users, "centre": CENTRE,
                "rule": f"the best mean validation NDCG@10, unless its paired test against the centre has "
                        f"p >= {TIE_ALPHA:g}: then the centre stays",
                **_machine()})
    entries = out.setdefault("entries", {})
    for spec in specs:
        setting = parse_setting(spec)
        key = setting_key(setting)
        print(f"{key}: {targets:,} targets", flush=True)
        model = ItemHeadLLM(backend, titles, ItemHeadSettings(**setting, targets=targets), vectors)
        model.fit(split, progress=sys.stderr.isatty())
        ndcg = valid_ndcg(model, split, n_users)
        losses = [h["loss"] for h in model.history]
        entries[key] = {"setting": setting, "train_seconds": model.train_seconds,
                        "targets_per_second": model.targets_seen / model.train_seconds,
                        "final_loss": float(np.mean(losses[-25:])), "ndcg10": float(ndcg.mean()),
                        "per_user": ndcg.round(6).tolist()}
        print(f"  valid NDCG@10 {ndcg.mean():.4f}, {model.targets_seen / model.train_seconds:.1f} targets/s",
              flush=True)
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps(out, indent=1) + "\n")
    return out


def merge(paths: list[Path], record: Path) -> dict:
    """Add the entries of ``paths`` (same proxy length and users) into ``record``."""
    out = json.loads(record.read_text()) if record.is_file() else None
    for path in paths:
        other = json.loads(path.read_text())
        if out is None:
            out = other
            continue
        if (other["targets"], other["users"]) != (out["targets"], out["users"]):
            raise SystemExit(f"{path}: another proxy length or other users than {record}")
        out["entries"].update(other["entries"])
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(out, indent=1) + "\n")
    return out


def chosen(search_record: dict, alpha: float = TIE_ALPHA) -> dict:
    """The setting with the best mean validation NDCG@10, unless the centre is among the entries and
    the best does not beat it in a paired test at level ``alpha`` (a tie keeps the centre: a change
    of setting must earn its place).  The rule was fixed before the search it applies to ran."""
    from .evaluate import paired_test

    entries = list(search_record["entries"].values())
    best = max(entries, key=lambda e: e["ndcg10"])
    centre = next((e for e in entries if e["setting"] == search_record["centre"]), None)
    if centre is None or centre is best:
        return best["setting"]
    p = paired_test(np.asarray(best["per_user"]), np.asarray(centre["per_user"]), seed=0)["p_value"]
    return best["setting"] if p < alpha else centre["setting"]


# ---------------------------------------------------------------- the long run
def _kept_valid(path: Path, backend, titles, split) -> np.ndarray:
    """The validation NDCG@10 of the model kept in ``path`` (stored beside it once computed, so an
    interrupted run does not score a kept model twice)."""
    from .models.llm.itemhead import ItemHeadLLM
    from .safeio import write_atomic

    done = path / "valid.json"
    if done.is_file():
        stored = json.loads(done.read_text())
        if stored["users"] == VALID_USERS == len(stored["per_user"]):
            return np.asarray(stored["per_user"])
    ndcg = valid_ndcg(ItemHeadLLM.from_saved(backend, titles, path), split)
    write_atomic(done, lambda tmp: tmp.write_text(json.dumps({"users": VALID_USERS, "per_user": ndcg.tolist()})))
    return ndcg


def whole(root: Path, passes: float = 1.0, targets: int | None = None, test_users: int | None = None,
          conditions: str | None = None) -> Path:
    """Train the chosen setting over the whole training data, choose the kept model on validation,
    score it on the test split and write the record and the model (see the module docstring).
    ``targets`` and ``test_users`` cut the run and its P1 users short (a smoke run of the command);
    ``conditions`` says in words what else the machine ran meanwhile.  A record already there is
    kept: the better run on validation is the committed one, the other is kept in ``other_runs``
    (one per number of passes)."""
    import torch

    from .assets import cache_dir
    from .evaluate import evaluate_candidates, evaluate_full, sample_candidates
    from .models.llm.itemhead import ItemHeadLLM, ItemHeadSettings

    start = time.perf_counter()
    search_record = json.loads((root / SEARCH_RECORD).read_text())
    setting = chosen(search_record)
    split, backend, titles, vectors = _context()
    model = ItemHeadLLM(backend, titles, ItemHeadSettings(**setting, passes=passes, targets=targets), vectors)
    digest = hashlib.sha256(f"{setting_key(setting)};passes={passes:g};targets={targets};{backend.name}"
                            .encode()).hexdigest()[:12]
    folder = cache_dir() / "itemhead" / f"whole-{digest}"  # the run's checkpoints: the same run resumes
    print(f"item-head LLM over the whole training data ({setting_key(setting)}); checkpoints in {folder}; "
          "an interrupted run resumes from them", flush=True)
    model.fit(split, progress=True, checkpoint_dir=folder, keep=KEEP)
    history = model.history
    step = max(1, len(history) // 200)
    loss = [{"targets": h["targets"], "seconds": round(h["seconds"], 1),
             "loss": round(float(np.mean([g["loss"] for g in history[max(0, i - step + 1):i + 1]])), 4)}
            for i, h in enumerate(history) if (i + 1) % step == 0 or i + 1 == len(history)]
    points, paths = [], {}
    for path in model.kept(folder).values():
        meta = json.loads((path / "item_head.json").read_text())  # the targets and seconds when it was kept
        k = meta["targets_seen"]
        if k in paths:  # two sizes of KEEP crossed by one step: one model
            continue
        ndcg = _kept_valid(path, backend, titles, split)
        paths[k] = path
        points.append({"targets": k, "share": k / model.targets_per_pass, "seconds": meta["train_seconds"],
                       "valid": {"ndcg10": float(ndcg.mean()), "per_user": ndcg.round(6).tolist()}})
        print(f"{k:>7,} targets {meta['train_seconds']:7.0f} s  valid NDCG@10 {ndcg.mean():.4f}", flush=True)
    best = max(points, key=lambda p: p["valid"]["ndcg10"])
    run = {"command": "python -m recnotes.itemhead_run whole" + (f" --passes {passes:g}" if passes != 1 else ""),
           "passes": passes, **_machine(), "finished": time.strftime("%Y-%m-%d"),
           "settings": asdict(model.settings),
           "trainable_parameters": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
           "train_seconds": model.train_seconds, "targets_per_pass": model.targets_per_pass,
           "seconds_total": time.perf_counter() - start, "loss": loss, "points": points,
           "chosen_targets": best["targets"], "chosen_seconds": best["seconds"]}
    if conditions:
        run["conditions"] = conditions
    path = record_path(root)
    previous = json.loads(path.read_text()) if path.is_file() and targets is None else None
    if previous is not None and _best_valid(previous) >= best["valid"]["ndcg10"]:
        # the committed model stays: this run is recorded beside it, not chosen
        previous["other_runs"] = [r for r in previous.get("other_runs", []) if r["passes"] != passes] + [run]
        path.write_text(json.dumps(previous, indent=1) + "\n")
        print(f"best on validation {best['valid']['ndcg10']:.4f}, below the committed run's "
              f"{_best_valid(previous):.4f}: recorded beside it in {path}")
        return path
    out_dir = model_dir(root)
    ItemHeadLLM.from_saved(backend, titles, paths[best["targets"]]).save(out_dir, torch.float16)
    committed = ItemHeadLLM.from_saved(backend, titles, out_dir)  # the record is what the files give
    p1 = evaluate_full(committed, split, stage="test", ks=(10, 20), batch_size=64,
                       users=None if test_users is None else np.arange(test_users))
    p2 = evaluate_candidates(committed, split, sample_candidates(split, n_users=P2_USERS, seed=0, stage="test"),
                             stage="test", ks=(10,))
    history_one = split.histories("test")[int(p2.users[0])]
    latency = []
    for _ in range(5):
        t0 = time.perf_counter()
        committed.score([history_one])
        latency.append(time.perf_counter() - t0)
    others = [] if previous is None else [run_of(previous)] + previous.get("other_runs", [])
    record = {
        "what": "the item-head LLM trained over the whole training data, the kept model best on validation "
                "(of every run recorded) committed", **run, "model": MODEL_NAME, "search": str(SEARCH_RECORD),
        "valid_users": VALID_USERS,
        "p1": {"users": p1.users.tolist(), "ranks": p1.ranks.tolist(), "topk": p1.topk.tolist(),
               "n_items": split.n_items, "seconds": p1.seconds},
        "p2": {"users": p2.users.tolist(), "ranks": p2.ranks.tolist(), "candidates_seed": 0},
        "latency_ms_median": 1000 * float(np.median(latency)),
        "folder": str(RECORD_DIR / NAME),
        "other_runs": [r for r in others if r["passes"] != passes],
    }
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"P1 NDCG@10 {p1.per_user['NDCG@10'].mean():.4f}, P2 {p2.per_user['NDCG@10'].mean():.4f}: {path}")
    return path


#: what describes one long run in a record (the rest is the committed model's test scores);
#: ``seconds_total`` is the wall-clock time of the command that wrote it (a resumed run's
#: command counts only what it did)
RUN_FIELDS = ("command", "passes", "machine", "device", "dtype", "threads", "versions", "finished", "settings",
              "trainable_parameters", "train_seconds", "targets_per_pass", "seconds_total", "loss", "points",
              "chosen_targets", "chosen_seconds", "conditions")


def _best_point(run: dict) -> dict:
    return max(run["points"], key=lambda p: p["valid"]["ndcg10"])


def run_of(record: dict) -> dict:
    """The run of a record (its committed model's), without the test scores."""
    run = {k: record[k] for k in RUN_FIELDS if k in record}
    run.setdefault("passes", record["settings"]["passes"])
    return run


def _best_valid(record: dict) -> float:
    return _best_point(record)["valid"]["ndcg10"]


def read_record(root: Path | None = None) -> dict:
    path = record_path(root)
    if not path.is_file():
        raise FileNotFoundError(f"no item-head record {path}; run: python -m recnotes.itemhead_run whole")
    record = json.loads(path.read_text())
    record.setdefault("passes", record["settings"]["passes"])
    return record


class _Scored:
    """A model's scores of some histories, computed once and served to both evaluators."""

    def __init__(self, model, histories) -> None:
        self.name = model.name
        scores = model.score(histories)
        self.rows = {np.asarray(h).tobytes(): row for h, row in zip(histories, scores)}

    def score(self, histories):
        import torch

        return torch.stack([self.rows[np.asarray(h).tobytes()] for h in histories])


def load_committed(split, root: Path | None = None, backend=None):
    """The committed model (``book/longrun/itemhead/``) over ``backend`` (default: the pinned LLM in
    this device's dtype)."""
    from .models.llm import load_backend
    from .models.llm import item_titles
    from .models.llm.itemhead import ItemHeadLLM

    return ItemHeadLLM.from_saved(backend or load_backend(None), item_titles(split.data), model_dir(root))


def rederive(record: dict, split, n_users: int = REDERIVE_USERS, root: Path | None = None, backend=None) -> dict:
    """Score the committed model again on the first ``n_users`` of the record's P2 users (P1 and
    P2) and compare with the record; raise ``AssertionError`` beyond :data:`TOLERANCE`.
    ``backend``: the LLM under the adapters (default: the pinned one, in this device's dtype)."""
    from .evaluate import Candidates, evaluate_candidates, evaluate_full, sample_candidates
    from .longrun import ndcg10

    model = load_committed(split, root, backend)
    cands = sample_candidates(split, n_users=P2_USERS, seed=record["p2"]["candidates_seed"], stage="test")
    first = cands.users[:n_users]
    model = _Scored(model, [split.histories("test")[u] for u in first])  # one pass per user for both protocols
    out = {}
    for protocol in ("p1", "p2"):
        if protocol == "p1":
            now = evaluate_full(model, split, stage="test", ks=(10,), users=first, batch_size=64)
        else:
            sub = Candidates(first, cands.items[:n_users], cands.target_pos[:n_users], cands.stage, cands.seed)
            now = evaluate_candidates(model, split, sub, stage="test", ks=(10,))
        stored = dict(zip(record[protocol]["users"], record[protocol]["ranks"]))
        then = np.array([stored[int(u)] for u in now.users])
        result = {"users": len(then), "ndcg10_record": ndcg10(then), "ndcg10_now": ndcg10(now.ranks),
                  "same_rank_share": float((np.minimum(then, 10) == np.minimum(now.ranks, 10)).mean())}
        if abs(result["ndcg10_now"] - result["ndcg10_record"]) > TOLERANCE["ndcg10"] or \
                result["same_rank_share"] < TOLERANCE["same_rank_share"]:
            raise AssertionError(
                f"the committed item-head model, scored again, gives {protocol.upper()} NDCG@10 "
                f"{result['ndcg10_now']:.4f} against the record's {result['ndcg10_record']:.4f} "
                f"({result['same_rank_share']:.0%} of users at the same rank); the tolerance is "
                f"{TOLERANCE['ndcg10']} and {TOLERANCE['same_rank_share']:.0%}")
        out[protocol] = result
    return out


# ---------------------------------------------------------------- reading the records
def read_search(root: Path | None = None) -> dict:
    path = (root or _root()) / SEARCH_RECORD
    if not path.is_file():
        raise FileNotFoundError(f"no item-head settings search {path}; run: python -m recnotes.itemhead_run search")
    return json.loads(path.read_text())


def setting_words(settings: dict) -> str:
    """The searched settings in words."""
    return (f"learning rate {settings['lr']:g} for the adapters and {settings['head_lr']:g} for the item head, "
            f"adapters of rank {settings['rank']} on the top {settings['layers']} blocks, windows of "
            f"{settings['window']} films, a logit scale of {settings['scale']:g}, and states "
            + ("centred on the films' mean" if settings.get("center") else "not centred"))


def per_user(record: dict, protocol: str = "P1", ks=(10, 20)):
    """The committed model's per-user metrics on the test split (``P1``: every user, the whole
    catalogue; ``P2``: chapter 6's users and candidates), as an evaluator's ``per_user`` frame."""
    import pandas as pd

    from .evaluate.metrics import rank_metrics

    part = record[protocol.lower()]
    if protocol == "P2":
        ks = tuple(k for k in ks if k <= 20)
    return pd.DataFrame(rank_metrics(np.asarray(part["ranks"]), ks), index=pd.Index(part["users"], name="user"))


def eval_result(record: dict, split, protocol: str = "P1", ks=(10, 20)):
    """The record's test ranks as an evaluator's result (P1 with its top-20 lists, for the
    beyond-accuracy metrics), named :data:`MODEL_NAME`."""
    from .evaluate.protocols import EvalResult

    frame = per_user(record, protocol, ks)
    part = record[protocol.lower()]
    if protocol == "P2":
        return EvalResult("P2", MODEL_NAME, frame.index.to_numpy(), np.asarray(part["ranks"]), frame,
                          tuple(k for k in ks if k <= 20), "test", 20)
    popularity = np.asarray(split.train_matrix("test").sum(axis=0)).ravel().astype(np.int64)
    return EvalResult("P1", MODEL_NAME, frame.index.to_numpy(), np.asarray(part["ranks"]), frame, tuple(ks), "test",
                      part["n_items"], topk=np.asarray(part["topk"]), popularity=popularity,
                      n_train_users=split.n_users, mask_seen=True)


def curve(record: dict, n_bootstrap: int = 1000, seed: int = 0):
    """One row per kept model of the long run: targets, share of a pass, seconds of training, and
    the validation NDCG@10 (the first :data:`VALID_USERS` users, P1) with its 95% bootstrap interval."""
    import pandas as pd

    from .evaluate import bootstrap_ci

    rows = []
    for p in record["points"]:
        mean, low, high = bootstrap_ci(np.asarray(p["valid"]["per_user"]), n_bootstrap, seed=seed)
        rows.append({"targets": p["targets"], "share": p["share"], "seconds": p["seconds"],
                     "ndcg10": float(mean), "low": float(low), "high": float(high)})
    return pd.DataFrame(rows)


def plateau_words(record: dict, alpha: float = 0.05, seed: int = 0) -> str:
    """Where the long run's validation curve flattens, in words: :func:`recnotes.longrun.plateau_of`
    over its kept models (the same validation users at every point)."""
    import pandas as pd

    from .longrun import plateau_of
    from .longrun import plateau_words as words

    curve = {p["targets"]: pd.Series(p["valid"]["per_user"]) for p in record["points"]}
    return words(plateau_of(curve, alpha, seed), max(curve))


def record_facts(record: dict, search: dict, seed: int = 0, n_bootstrap: int = 1000) -> dict:
    """What the pages state about the long run's record and its settings search, by glue name
    (``head_*``): the search's proxy length, the run (its passes) and its kept models, the time and
    machine of the whole run, the chosen settings, the kept model best on validation and the runs
    of other lengths beside it."""
    valid = curve(record, n_bootstrap=n_bootstrap, seed=seed)
    kept = record["points"]
    passes = record.get("passes", record["settings"]["passes"])
    return {
        "head_passes": passes_words(passes),
        "head_runs_words": runs_words(record, seed=seed),
        "head_choice_words": choice_words(search, seed=seed),
        "head_kept": ", ".join(f"{p['targets']:,}" for p in kept[:-1]) + f" and {kept[-1]['targets']:,}",
        "head_valid_users": record["valid_users"],
        "head_proxy": search["targets"],
        "head_pass": record["targets_per_pass"],
        "head_hours": record["train_seconds"] / 3600,  # the whole run (chapter 9 has the time to the kept model)
        "head_machine": machine_name(record["machine"]),
        "head_dtype": record["dtype"].replace("bfloat16", "bf16"),
        "head_setting": setting_words(record["settings"]),
        "head_chosen_targets": record["chosen_targets"],
        "head_chosen_share": 100 * record["chosen_targets"] / kept[-1]["targets"],  # of the run
        "head_chosen_valid": float(valid.loc[valid.targets == record["chosen_targets"], "ndcg10"].iloc[0]),
        "head_flat_words": plateau_words(record, seed=seed),
    }


def machine_name(machine: str) -> str:
    """A record's CPU for a reader: ``"Intel(R) Xeon(R) Processor, 2 cores, ..."`` -> ``"Intel Xeon"``."""
    name = machine.split(",")[0]
    for mark in ("(R)", "(TM)", " Processor", " CPU"):
        name = name.replace(mark, "")
    return " ".join(name.split())


def passes_words(passes: float) -> str:
    """``1`` -> ``"once"``, ``2`` -> ``"twice"``, ``1.5`` -> ``"1.5 times"``."""
    return {1: "once", 2: "twice"}.get(passes, f"{passes:g} times")


def runs_words(record: dict, seed: int = 0) -> str:
    """The long runs of other lengths recorded beside the committed one, in words: where each did
    best on validation, and the paired test of the committed model against that point (the same
    validation users).  Empty when there is none."""
    from .evaluate import paired_test
    from .report.compare import fmt, fmt_count, fmt_p
    from .report.phrases import compared

    mine = np.asarray(_best_point(record)["valid"]["per_user"])
    out = []
    for run in record.get("other_runs", []):
        best = _best_point(run)
        test = paired_test(mine, np.asarray(best["valid"]["per_user"]), seed=seed)
        out.append(f"The run over the data {passes_words(run['passes'])} ({run['train_seconds'] / 3600:.1f} hours "
                   f"of one core of {machine_name(run['machine'])}), its learning rate decaying to zero at its "
                   f"own end, did best after {fmt_count(best['targets'])} targets (validation NDCG@10 "
                   f"{fmt(best['valid']['ndcg10'])}); the committed model is "
                   f"{compared(test, 'that one')} (paired test, p {fmt_p(test['p_value'])}).")
    return " ".join(out)


def choice_words(search_record: dict, seed: int = 0) -> str:
    """Why the search chose what it chose, when that is not its best row: the best row's paired
    test against the centre, and the rule.  Empty when the best row is the choice."""
    from .evaluate import paired_test
    from .report.compare import fmt_p

    entries = list(search_record["entries"].values())
    best = max(entries, key=lambda e: e["ndcg10"])
    if best["setting"] == chosen(search_record):
        return ""
    centre = next(e for e in entries if e["setting"] == search_record["centre"])
    p = paired_test(np.asarray(best["per_user"]), np.asarray(centre["per_user"]), seed=seed)["p_value"]
    changed = ", ".join(_changed(k, v) for k, v in best["setting"].items() if search_record["centre"].get(k) != v)
    return (f"The best row ({changed}) is not significantly better than the centre (paired test, p {fmt_p(p)}), "
            f"so by the rule fixed before the search the centre stays.")


#: how a search table names a changed setting
_WORDS = {"lr": "adapters' learning rate {:g}", "head_lr": "item head's learning rate {:g}",
          "layers": "adapters on the top {} blocks", "window": "windows of {} films", "scale": "logit scale {:g}",
          "rank": "adapters of rank {}", "batch_size": "batches of {} windows"}


def _changed(field: str, value) -> str:
    if field == "center":
        return "states centred" if value else "states not centred"
    return _WORDS[field].format(value) if field in _WORDS else f"{field} {value}"


def search_table(search_record: dict, seed: int = 0):
    """The settings search as a table: one row per setting (what it changes from the centre; the
    chosen one marked), its validation NDCG@10 with a 95% interval, the paired test against the
    best setting, and its
    training loss at the end (the mean of the last 25 steps); the best first.  (The runs' rates are
    in the record, but they shared the CPU with other jobs.)"""
    import pandas as pd

    from .evaluate import bootstrap_ci, paired_test
    from .report.compare import fmt, fmt_ci, fmt_p

    entries = sorted(search_record["entries"].values(), key=lambda e: -e["ndcg10"])
    best = np.asarray(entries[0]["per_user"])
    choice = chosen(search_record) if "rule" in search_record else entries[0]["setting"]
    rows = []
    for e in entries:
        changed = {k: v for k, v in e["setting"].items() if search_record["centre"].get(k) != v}
        mark = " (chosen)" if e["setting"] == choice else ""
        mean, low, high = bootstrap_ci(np.asarray(e["per_user"]), 1000, seed=seed)
        p = paired_test(pd.Series(best), pd.Series(e["per_user"]), seed=seed)["p_value"] if e is not entries[0] else None
        rows.append({"setting": (", ".join(_changed(k, v) for k, v in changed.items()) or "the centre") + mark,
                     "valid NDCG@10": fmt(mean), "95% CI": fmt_ci(low, high),
                     "p vs best": "" if p is None else fmt_p(p), "final loss": f"{e['final_loss']:.2f}"})
    return pd.DataFrame(rows).set_index("setting")


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(prog="python -m recnotes.itemhead_run", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("search", help="train and validate settings at the proxy length")
    s.add_argument("--settings", nargs="*", default=[""], help="FIELD=VALUE,... over the centre ('' : the centre)")
    s.add_argument("--record", type=Path, default=None, help=f"default: {SEARCH_RECORD}")
    s.add_argument("--targets", type=int, default=PROXY_TARGETS)
    s.add_argument("--users", type=int, default=VALID_USERS)
    s.add_argument("--merge", nargs="+", type=Path, help="add these records' entries instead")
    w = sub.add_parser("whole", help="the long run with the chosen setting")
    w.add_argument("--passes", type=float, default=1.0)
    w.add_argument("--targets", type=int, default=None, help="stop after this many targets (a smoke run)")
    w.add_argument("--test-users", type=int, default=None, help="P1 on the first N users only (a smoke run)")
    w.add_argument("--root", type=Path, default=None, help="where book/ is (default: this checkout)")
    w.add_argument("--conditions", default=None, help="what else the machine ran meanwhile, in words")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    root = _root()
    if args.command == "search":
        record = args.record or root / SEARCH_RECORD
        if args.merge:
            merge(args.merge, record)
        else:
            search(args.settings, record, args.targets, args.users)
        return 0
    whole(args.root or root, args.passes, args.targets, args.test_users, args.conditions)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
