"""Looking numbers up in other chapters' results: one number or a clear error."""

from __future__ import annotations

import json
import math

import pytest

from recnotes.report.lookup import ANY, ResultsMissing, load, select, value, wide
from recnotes.report.results import record, write_results


@pytest.fixture()
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("RECNOTES_RESULTS", str(tmp_path))
    rows = [record("P1", "GPTRec", "NDCG", 0.10, k=10, seed=0),
            record("P1", "GPTRec", "NDCG", 0.12, k=10, seed=1),
            record("P1", "GPTRec", "NDCG", 0.11, k=10, ci_low=0.1, ci_high=0.12, n_users=943, seed="mean"),
            record("P1", "GPTRec", "NDCG", 0.20, k=20, seed="mean"),
            record("P2", "GPTRec", "NDCG", 0.55, k=10, seed="mean"),
            record("P1", "Popularity", "NDCG", 0.03, k=10),
            record(None, "GPTRec", "train_seconds", 95.0, seed=0),
            record(None, "GPTRec", "train_seconds", 99.0, seed=1),
            record(None, "GPTRec", "params", 120000, seed=0),
            record("P2", "LLMRanker[likelihood,sequential]", "seconds_per_user", 1.5, seed=0),
            record(None, "Popularity", "params", 0)]
    write_results("09_demo", rows, dataset="ml-100k", profile="full")
    return tmp_path


def test_one_number_by_its_fields(results):
    assert value("09_demo", model="GPTRec", metric="NDCG", protocol="P1", k=20) == 0.20
    assert value("09_demo", model="GPTRec", metric="NDCG", protocol="P2", k=10) == 0.55
    assert value("09_demo", model="Popularity", metric="NDCG", protocol="P1", k=10) == 0.03
    assert value("09_demo", model="LLMRanker[likelihood,sequential]", metric="seconds_per_user") == 1.5


def test_seed_mean_wins_then_smallest_seed(results):
    assert value("09_demo", model="GPTRec", metric="NDCG", protocol="P1", k=10) == 0.11
    assert value("09_demo", model="GPTRec", metric="NDCG", protocol="P1", k=10, seed=1) == 0.12
    assert value("09_demo", model="GPTRec", metric="train_seconds", protocol=None) == 95.0
    assert value("09_demo", model="GPTRec", metric="NDCG", protocol="P1", k=10, field="ci_high") == 0.12
    assert value("09_demo", model="GPTRec", metric="NDCG", protocol="P1", k=10, field="n_users") == 943


def test_none_protocol_is_not_any(results):
    assert len(select("09_demo", metric="seconds_per_user", protocol=None)) == 0
    assert len(select("09_demo", metric="seconds_per_user", protocol=ANY)) == 1


def test_ambiguous_lookup_is_an_error(results):
    with pytest.raises(ValueError, match="say which"):
        value("09_demo", model="GPTRec", metric="NDCG")  # P1 and P2, k 10 and 20


def test_no_match_names_what_there_is(results):
    with pytest.raises(KeyError, match="GPTRec.*Popularity|Popularity.*GPTRec"):
        value("09_demo", model="EASE", metric="NDCG", protocol="P1", k=10)


def test_missing_chapter_says_which_chapter_to_execute(results):
    with pytest.raises(ResultsMissing, match="execute.py 10_outlook"):
        value("10_outlook", model="GPTRec", metric="params")
    assert isinstance(ResultsMissing("x"), FileNotFoundError)


def test_results_of_another_dataset_are_refused_when_a_dataset_is_asked(results):
    assert load("09_demo", "ml-100k")["dataset"] == "ml-100k"
    with pytest.raises(ResultsMissing, match="09_demo are for ml-100k, not /data/ml-1m: execute that chapter"):
        load("09_demo", "/data/ml-1m")


def test_loaded_results_and_paths_work_too(results):
    res = load("09_demo")
    assert value(res, model="GPTRec", metric="params") == 120000
    assert value(results / "09_demo.json", model="GPTRec", metric="params") == 120000
    assert json.loads((results / "09_demo.json").read_text())["chapter"] == res["chapter"]


def test_wide_table(results):
    p1 = wide("09_demo", ["NDCG@10", "NDCG@20"], ["GPTRec", "Popularity", "EASE"], protocol="P1")
    assert list(p1.columns) == ["NDCG@10", "NDCG@20"]
    assert p1.loc["GPTRec", "NDCG@10"] == 0.11 and p1.loc["GPTRec", "NDCG@20"] == 0.20
    assert p1.loc["Popularity", "NDCG@10"] == 0.03 and math.isnan(p1.loc["Popularity", "NDCG@20"])
    assert p1.loc["EASE"].isna().all()
    cost = wide("09_demo", ["train_seconds", "params"], protocol=None)
    assert list(cost.index) == ["GPTRec", "Popularity"]  # models having the metrics, in file order
    assert list(wide("09_demo", ["NDCG@10"], protocol="P2").index) == ["GPTRec"]  # only P2's models
    assert cost.loc["GPTRec"].tolist() == [95.0, 120000] and math.isnan(cost.loc["Popularity", "train_seconds"])


def test_wide_refuses_an_ambiguous_cell(results):
    with pytest.raises(ValueError, match="say which"):
        wide("09_demo", ["NDCG@10"], ["GPTRec"])  # P1 and P2
