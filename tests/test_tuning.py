"""The equal-terms tuning search: the same number of trials for every model, trial 0 the
previous default, seeded draws inside the stated space, the winner the best eligible trial
on validation, and the Config defaults equal to the committed records' winners."""

from __future__ import annotations

import math

import pytest

from recnotes.experiments import CONFIGS
from recnotes.tune import N_TRIALS, PREVIOUS_DEFAULTS, SPACES, defaults_match, read_record, sample_trials, winner

MODELS = ("ItemKNN", "EASE", "LSTM", "GPTRec")


@pytest.mark.parametrize("model", MODELS)
def test_trials_are_seeded_equal_in_number_and_inside_the_space(model):
    trials = sample_trials(model)
    assert len(trials) == N_TRIALS and trials == sample_trials(model)  # seeded
    assert trials[0] == PREVIOUS_DEFAULTS[model]
    assert len({tuple(sorted(t.items())) for t in trials}) == N_TRIALS  # no repeats
    for params in trials[1:]:
        for p in SPACES[model]:
            v = params[p.name]
            if p.kind == "choice":
                assert v in p.values
            else:
                assert p.low * (1 - 1e-3) <= v <= p.high * (1 + 1e-3)
                assert not p.integer or v == int(v)
        if "n_heads" in params:
            assert params["dim"] % params["n_heads"] == 0
        CONFIGS[model](**params)  # every draw is a valid config


def test_space_and_previous_defaults_name_config_fields():
    for model in MODELS:
        fields = set(CONFIGS[model].__dataclass_fields__)
        assert {p.name for p in SPACES[model]} <= fields
        assert set(PREVIOUS_DEFAULTS[model]) <= fields


def test_winner_is_the_best_eligible_trial():
    record = {"model": "X", "trials": [
        {"trial": 0, "valid_ndcg10": 0.10, "eligible": True},
        {"trial": 1, "valid_ndcg10": 0.12, "eligible": False},
        {"trial": 2, "valid_ndcg10": 0.11, "eligible": True},
        {"trial": 3, "valid_ndcg10": 0.11, "eligible": True}]}
    assert winner(record)["trial"] == 2  # over budget cannot win; the first wins a tie
    assert winner({"model": "X", "trials": [{"trial": 0, "valid_ndcg10": 0.1, "eligible": False}]}) is None


@pytest.mark.parametrize("model", MODELS)
def test_defaults_equal_the_committed_records_winners(model):
    record = read_record(model)
    assert record["n_trials"] == N_TRIALS and len(record["trials"]) == N_TRIALS
    assert record["metric"].startswith("NDCG@10 on the validation")
    assert defaults_match(model) == {}, f"run python -m recnotes.tune {model} --check"
    for t in record["trials"]:
        assert 0 <= t["valid_ndcg10"] <= 1 and not math.isnan(t["valid_ndcg10"])


def test_lora_defaults_are_the_best_setting_on_validation():
    import json

    from recnotes.llm_experiments import LoRAConfig
    from recnotes.llm_tasks import CURVE, TASKS
    from recnotes.tune import RECORD_DIR

    record = json.loads((RECORD_DIR / "LoRA.json").read_text())
    assert record["stage"] == "valid"
    factors = ("lr", "layers", "rank", "window", "objective")
    trained = {k: v for k, v in record["results"].items() if not v.get("zero_shot")}
    limit = record.get("budget", {}).get("max_window", float("inf"))

    def affordable(entry):  # the book's CPU budget: prompts of at most limit - 1 films
        return entry.get("window", entry.get("history", 0) + 1) <= limit

    # the best (setting, scoring) pair within the budget, recomputed from the per-user scores
    scores = {(k, r): sum(u) / len(u) for k, v in record["per_user"].items() for r, u in v.items()
              if affordable(record["results"][k])}
    (setting, reduce), _ = max(scores.items(), key=lambda kv: kv[1])
    assert setting in trained, f"a zero-shot prompt ({setting}) is the best on validation"
    best = trained[setting]
    cfg = LoRAConfig().settings()
    assert (cfg.lr, cfg.layers, cfg.rank, cfg.window, cfg.objective, cfg.alpha) == \
        tuple(best[f] for f in (*factors, "alpha"))
    assert TASKS[next(iter(CURVE))]("ml-100k", 0, "full").reduce == reduce
    assert all(v["within_budget"] == affordable(v) for v in record["results"].values())
    # no chosen value at the edge of the values tried for it, the other settings as chosen
    # (values beyond the budget count as tried: the record shows what they would have given)
    for f in ("lr", "layers", "rank", "window"):
        tried = sorted({v[f] for v in trained.values() if all(v[g] == best[g] for g in factors if g != f)})
        assert len(tried) >= 3 and tried[0] < best[f] < tried[-1], f"{f}: {best[f]} at the edge of {tried}"
