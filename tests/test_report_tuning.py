"""The tuning appendix's builders on planted records: the rows in search order with labels that
say what each changes, the chosen row marked, the ranges and the edge stated truly, and the
trained models' summary."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from recnotes.report.tuning import LoRASearch, trials_facts, trials_figure, trials_table  # noqa: E402

CENTRE = {"lr": 0.008, "layers": 8, "rank": 4, "window": 40, "objective": "lm"}


def entry(ndcg, within=True, tokens=700, **changes):
    setting = {**CENTRE, **changes}
    scores = {r: {"valid_ndcg10": ndcg + (0.01 if r == "sum" else 0), "ci_low": ndcg - 0.05,
                  "ci_high": ndcg + 0.05, "p_vs_best": 0.3, "diff_vs_best": -0.01} for r in ("mean", "sum")}
    return {**setting, **scores, "within_budget": within, "targets": 2000, "train_seconds": 60.0,
            "tokens_per_user": tokens}


@pytest.fixture
def record():
    results = {
        "zs-list": {**CENTRE, "zero_shot": True, "template": "list", "history": 19, "within_budget": True,
                    **{r: {"valid_ndcg10": 0.40, "ci_low": 0.35, "ci_high": 0.45, "p_vs_best": 0.01,
                           "diff_vs_best": -0.1} for r in ("mean", "sum")}, "tokens_per_user": 700},
        "centre": entry(0.50),
        "lr-low": entry(0.48, lr=0.003),
        "lr-high": entry(0.52, lr=0.02),
        "w80": entry(0.55, within=False, tokens=1000, window=80),
        "lr-high+rank8": entry(0.53, lr=0.02, rank=8),
    }
    best = {"setting": "lr-high+rank8", "reduce": "mean"}
    del results["lr-high+rank8"]["mean"]["p_vs_best"]  # the best row has no test against itself
    return {"results": results, "best": best, "centre": CENTRE, "targets": 2000, "users": 300,
            "negatives": 19, "dtype": "bfloat16", "machine": "a CPU",
            "budget": {"reason": "the window reads more tokens."}}


def test_rows_come_zero_shot_first_then_by_round_with_what_they_change(record):
    search = LoRASearch(record)
    assert search.order == ["zs-list", "centre", "w80", "lr-low", "lr-high", "lr-high+rank8"]
    assert search.labels["zs-list"] == f"zero-shot, list prompt, {record['results']['zs-list']['history']} films"
    assert search.labels["lr-low"] == "learning rate 0.003"
    assert search.labels["w80"] == "window 80 (over budget)"
    assert search.labels["lr-high+rank8"] == "rank 8, learning rate 0.02"
    assert search.rounds == 2
    table = search.table()
    assert list(table.index) == [search.labels[k] for k in search.order]
    assert table.loc["rank 8, learning rate 0.02", "p vs best, mean"] == "best"
    trials_figure({"GPTRec": {"trials": [{"trial": 0, "valid_ndcg10": 0.1, "eligible": True}], "winner": 0}})
    search.figure()


def test_the_facts_state_the_ranges_the_edge_and_whether_chapter_6_uses_the_best(record):
    search = LoRASearch(record)
    chosen = (0.02, 8, 8, 40, "lm")
    facts = search.facts((chosen, "mean"))
    assert facts["lora_used"] == "Chapter 6 uses this setting"
    assert search.facts((chosen, "sum"))["lora_used"] == "Chapter 6 does not use the best row"
    # the values tried with the others as chosen: 0.003 was tried at rank 4 only
    assert facts["lora_ranges"] == "learning rate 0.02; number of blocks 8; rank 4, 8; window 40"
    assert facts["lora_edge"].startswith("the chosen learning rate and number of blocks and rank and window lie")
    assert "reached 0.550" in facts["lora_budget"] and "1,000 tokens" in facts["lora_budget"]
    assert facts["lora_zs"] == "the list prompt 0.400" and facts["lora_format"].startswith("which is why")
    assert facts["lora_objectives"] == "none were tried"


def test_the_trained_models_summary_says_which_defaults_changed():
    records = {"EASE": {"trials": [{"trial": 0, "valid_ndcg10": 0.1, "eligible": True},
                                   {"trial": 1, "valid_ndcg10": 0.2, "eligible": True}], "winner": 1},
               "LSTM": {"trials": [{"trial": 0, "valid_ndcg10": 0.3, "eligible": True},
                                   {"trial": 1, "valid_ndcg10": 0.4, "eligible": False}], "winner": 0}}
    table = trials_table(records)
    assert table.loc["EASE", "winner"] == "trial 1" and table.loc["LSTM", "winner"] == "previous default"
    assert table.loc["LSTM", "within the time budget"] == 1
    assert trials_facts(records) == {"changed": "EASE", "kept": "LSTM"}


def test_the_objective_words_compare_the_rank_losses_with_the_centre_and_say_which_stays(record, tmp_path):
    import json

    record["results"]["rank"] = entry(0.45, objective="rank")
    record["results"]["rank"]["targets"] = 400
    search = LoRASearch(record)
    words = search.objective_words()
    assert words == ("rank loss, 400 targets in 60 s: 0.450, against 0.500 for the centre's LM loss "
                     "(2,000 targets in 60 s)")
    assert search.objective_words(verdict=True) == words + ", so the LM loss stays"
    assert search.facts(((0.02, 8, 8, 40, "lm"), "mean"))["lora_objectives"] == words
    record["results"]["rank"]["mean"]["valid_ndcg10"] = 0.51
    assert LoRASearch(record).objective_words(verdict=True).endswith("a rank loss did better at this length")
    # the chosen row's settings are named; another's are not; a missing record reads as None
    assert search.names({"lr": 0.02, "layers": 8, "rank": 8, "window": 40, "objective": "lm", "alpha": 16})
    assert not search.names({**CENTRE})
    path = tmp_path / "LoRA.json"
    path.write_text(json.dumps(record))
    assert LoRASearch.read(path).best == record["best"] and LoRASearch.read(tmp_path / "none.json") is None
