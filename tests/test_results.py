"""Evaluation outputs -> the results format of DESIGN.md, recomputed from the ranks."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from recnotes.data import Interactions, leave_one_out
from recnotes.evaluate import EfficiencyMeter, evaluate_candidates, evaluate_full, sample_candidates
from recnotes.report.results import (RECORD_KEYS, collect_ranks, efficiency_records, eval_records,
                                     write_evaluation)


@pytest.fixture(scope="module")
def split():
    rng = np.random.default_rng(0)
    rows = [(u, int(i), t) for u in range(40) for t, i in enumerate(rng.choice(60, 12, replace=False))]
    data = Interactions.from_frame(pd.DataFrame(rows, columns=["user", "item", "timestamp"]))
    return leave_one_out(data)


class Noise:
    def __init__(self, n_items: int, seed: int, name: str = "Noise"):
        self.n_items, self.g, self.name = n_items, torch.Generator().manual_seed(seed), name

    def score(self, histories):
        return torch.rand(len(histories), self.n_items + 1, generator=self.g)


def from_ranks(ranks, metric: str, k: int) -> float:
    """A metric recomputed from the stored ranks by plain Python."""
    f = {"HR": lambda r: 1.0, "NDCG": lambda r: 1 / math.log2(r + 2), "MRR": lambda r: 1 / (r + 1)}[metric]
    return sum(f(r) if r < k else 0.0 for r in ranks) / len(ranks)


def test_written_file_can_recompute_every_rank_metric(split, tmp_path):
    p1 = evaluate_full(Noise(split.n_items, 0), split)
    p2 = evaluate_candidates(Noise(split.n_items, 0), split, sample_candidates(split, n_users=25))
    meter = EfficiencyMeter()
    with meter.evaluation(split.n_users):
        evaluate_full(Noise(split.n_items, 1), split)
    path = write_evaluation("evaluation", [p1, p2], dataset="toy", profile="smoke",
                            efficiency=efficiency_records("P1", "Noise", meter.as_dict(), seed=0),
                            n_bootstrap=100, path=tmp_path / "evaluation.json")
    out = json.loads(path.read_text())
    assert out["chapter"] == "evaluation" and out["dataset"] == "toy" and out["profile"] == "smoke"
    assert out["ranks"]["P1"]["Noise"] == p1.ranks.tolist() and len(out["ranks"]["P2"]["Noise"]) == 25
    for r in out["records"]:
        assert tuple(r) == RECORD_KEYS
        if r["metric"] in ("HR", "NDCG", "MRR"):
            ranks = out["ranks"][r["protocol"]][r["model"]]
            assert r["value"] == pytest.approx(from_ranks(ranks, r["metric"], r["k"]))
            assert r["ci_low"] <= r["value"] <= r["ci_high"] and r["n_users"] == len(ranks)
    metrics = {(r["protocol"], r["metric"]) for r in out["records"]}
    assert {("P1", m) for m in ("coverage", "novelty", "avg_popularity", "gini")} <= metrics
    assert not {("P2", m) for m in ("coverage", "novelty", "avg_popularity", "gini")} & metrics
    eff = [r for r in out["records"] if r["metric"] == "eval_users_per_second"]
    assert len(eff) == 1 and eff[0]["seed"] == 0 and eff[0]["k"] is None and eff[0]["value"] > 0


def test_several_seeds_give_per_seed_and_mean_rows(split):
    runs = {seed: evaluate_full(Noise(split.n_items, seed), split, ks=(5, 10)) for seed in (2, 0, 1)}
    rows = eval_records(runs, n_bootstrap=50)
    mean = {(r["metric"], r["k"]): r for r in rows if r["seed"] == "mean"}
    for metric in ("HR", "NDCG", "MRR"):
        per_seed = [from_ranks(runs[s].ranks.tolist(), metric, 10) for s in (0, 1, 2)]
        assert mean[metric, 10]["value"] == pytest.approx(np.mean(per_seed))
    cov = [r["value"] for r in rows if r["metric"] == "coverage" and r["k"] == 5]
    assert cov[-1] == pytest.approx(np.mean(cov[:-1]))  # the "mean" row comes last
    assert {r["seed"] for r in rows} == {0, 1, 2, "mean"}
    assert collect_ranks([runs])["P1"]["Noise"] == runs[0].ranks.tolist()  # smallest seed


def test_bad_evaluations_raise(split):
    a = evaluate_full(Noise(split.n_items, 0), split, ks=(1,))
    with pytest.raises(ValueError, match="evaluated twice"):
        collect_ranks([a, a])
    other = evaluate_full(Noise(split.n_items, 0, name="Other"), split, ks=(1,))
    with pytest.raises(ValueError, match="not the same protocol, model and users"):
        eval_records({0: a, 1: other})
    with pytest.raises(ValueError, match="empty"):
        eval_records({})


def _published():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "book" / "results"
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def test_every_published_record_has_an_explicit_seed():
    for chapter, res in _published().items():
        for r in res["records"]:
            assert r["seed"] is not None, f"{chapter}: {r}"


#: facts of a model that no run changes: equal in every file, whatever the protocol
MODEL_FACTS = {"params", "flops_per_request", "size_mb", "trainable_params", "train_targets", "train_coverage",
               "blend_weight"}


def test_one_model_has_one_number_across_the_results_files():
    """Every record, with a protocol or not: the same (protocol, model, metric, k, seed, n_users)
    holds the same value in every file; a model fact (parameters, FLOPs, size) has one value
    whatever the protocol; and a timing without a protocol is the P1 setting's (a timing that
    another setting measured carries that setting's protocol, so it cannot pass for it)."""
    seen: dict = {}
    checked = 0
    for chapter, res in _published().items():
        for r in res["records"]:
            if r["value"] is None:
                continue
            if r["metric"] in MODEL_FACTS:
                key = ("fact", r["model"], r["metric"], r["seed"])
            else:
                protocol = "P1" if r["protocol"] is None else r["protocol"]
                key = (protocol, r["model"], r["metric"], r["k"], r["seed"], r["n_users"] if r["protocol"] else None)
            checked += 1
            if key in seen:
                other, value = seen[key]
                assert value == pytest.approx(r["value"], rel=1e-9, abs=1e-12), \
                    f"{key}: {value} in {other}, {r['value']} in {chapter}"
            else:
                seen[key] = (chapter, r["value"])
    assert checked > 100 and any(k[0] == "fact" for k in seen)


def test_random_ranks_at_chance_on_p2():
    """Random's published P2 HR@K: the target is one of 20 candidates, so chance is K/20,
    which must lie in its bootstrap interval (a broken sampler or metric would move it)."""
    found = 0
    for chapter, res in _published().items():
        for r in res["records"]:
            if r["model"] == "Random" and r["protocol"] == "P2" and r["metric"] == "HR" and r["ci_low"] is not None:
                found += 1
                assert r["ci_low"] <= r["k"] / 20 <= r["ci_high"], f"{chapter}: {r}"
    assert found


def test_published_accuracy_is_recomputed_from_the_stored_ranks():
    """Every published HR/NDCG/MRR record whose ranks are stored equals the metric recomputed
    here, from the ranks, by brute force (the smallest seed's run is the one whose ranks are kept)."""
    checked = 0
    for chapter, res in _published().items():
        assert res["profile"] == "full", f"{chapter}: the published results are of the {res['profile']} profile"
        for protocol, models in res["ranks"].items():
            for model, ranks in models.items():
                r = np.asarray(ranks)
                rows = [x for x in res["records"] if x["protocol"] == protocol and x["model"] == model
                        and x["metric"] in ("HR", "NDCG", "MRR") and isinstance(x["seed"], int)
                        and x["n_users"] in (None, len(r))]
                if not rows:
                    continue
                first = min(x["seed"] for x in rows)
                for x in (x for x in rows if x["seed"] == first):
                    k, hit = x["k"], r < x["k"]
                    brute = {"HR": hit.mean(), "NDCG": np.where(hit, 1 / np.log2(r + 2), 0).mean(),
                             "MRR": np.where(hit, 1 / (r + 1), 0).mean()}[x["metric"]]
                    assert x["value"] == pytest.approx(brute, rel=1e-9, abs=1e-12), (chapter, protocol, model, x)
                    checked += 1
    assert checked > 50
