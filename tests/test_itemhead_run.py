"""The item-head LLM's search and long-run records: the search's choice is its best validation
entry, the long run trained that choice, its committed model is the kept one best on validation,
its users are every user (P1) and chapter 6's (P2), and the committed files, loaded over the
pinned model, give the record's ranks again (a record altered by hand does not pass)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from recnotes import itemhead_run
from recnotes.evaluate import paired_test, sample_candidates
from recnotes.evaluate.metrics import rank_metrics

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def record():
    return itemhead_run.read_record()


@pytest.fixture(scope="module")
def search():
    return itemhead_run.read_search()


def test_a_setting_is_the_centre_with_the_named_fields_changed():
    setting = itemhead_run.parse_setting("lr=3e-3,layers=8")
    assert setting == {**itemhead_run.CENTRE, "lr": 3e-3, "layers": 8}
    assert itemhead_run.setting_key(setting) == itemhead_run.setting_key(dict(reversed(setting.items())))
    with pytest.raises(SystemExit):
        itemhead_run.parse_setting("temperature=3")


def test_records_of_another_proxy_length_are_not_merged(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"targets": 6000, "users": 300, "entries": {"x": {}}}))
    b.write_text(json.dumps({"targets": 8000, "users": 300, "entries": {"y": {}}}))
    with pytest.raises(SystemExit):
        itemhead_run.merge([a, b], tmp_path / "out.json")


def test_the_search_chooses_its_best_validation_entry_and_the_long_run_trains_it(search, record):
    means = {k: float(np.mean(e["per_user"])) for k, e in search["entries"].items()}
    assert all(abs(means[k] - e["ndcg10"]) < 1e-6 for k, e in search["entries"].items())
    best = max(means, key=means.get)
    centre = next(k for k, e in search["entries"].items() if e["setting"] == search["centre"])
    p = paired_test(pd.Series(search["entries"][best]["per_user"]), pd.Series(search["entries"][centre]["per_user"]))
    expected = best if best == centre or p["p_value"] < itemhead_run.TIE_ALPHA else centre
    assert itemhead_run.chosen(search) == search["entries"][expected]["setting"]
    assert all(len(e["per_user"]) == search["users"] for e in search["entries"].values())
    assert {k: record["settings"][k] for k in itemhead_run.CENTRE} == itemhead_run.chosen(search)
    assert search["targets"] < record["targets_per_pass"]  # a proxy length, shorter than the pass


def test_the_settings_defaults_are_the_searchs_choice(search):
    from dataclasses import asdict

    from recnotes.models.llm.itemhead import ItemHeadSettings

    defaults = asdict(ItemHeadSettings())
    assert {k: defaults[k] for k in itemhead_run.CENTRE} == itemhead_run.chosen(search)


def test_the_committed_model_is_the_kept_one_best_on_validation(record):
    points = record["points"]
    assert [p["targets"] for p in points] == sorted(p["targets"] for p in points)
    # the run ends after its last target
    assert points[-1]["targets"] >= record["settings"]["passes"] * record["targets_per_pass"] - 1
    means = [float(np.mean(p["valid"]["per_user"])) for p in points]
    assert max(points, key=lambda p: np.mean(p["valid"]["per_user"]))["targets"] == record["chosen_targets"]
    assert all(abs(m - p["valid"]["ndcg10"]) < 1e-6 for m, p in zip(means, points))
    for other in record.get("other_runs", []):  # runs of other lengths, recorded and not chosen
        assert other["passes"] != record["passes"] and other["settings"]["passes"] == other["passes"]
        assert max(p["valid"]["ndcg10"] for p in other["points"]) <= max(means)
        assert other["points"][-1]["targets"] >= other["passes"] * other["targets_per_pass"] - 1
    committed = json.loads((itemhead_run.model_dir() / "item_head.json").read_text())
    assert committed["targets_seen"] == record["chosen_targets"] and committed["settings"] == record["settings"]


def test_the_records_users_are_every_user_and_chapter_6s(record, split):
    assert record["p1"]["users"] == list(range(split.n_users))
    cands = sample_candidates(split, n_users=itemhead_run.P2_USERS, seed=record["p2"]["candidates_seed"])
    assert record["p2"]["users"] == cands.users.tolist()
    p1, p2 = np.asarray(record["p1"]["ranks"]), np.asarray(record["p2"]["ranks"])
    assert p1.min() >= 0 and p1.max() < split.n_items and p2.min() >= 0 and p2.max() < 20
    # the top-10 lists agree with the ranks: a target ranked in the top 10 is in its list at that place
    topk = np.asarray(record["p1"]["topk"])
    targets = split.targets("test")
    hit = p1 < 10
    assert np.array_equal(topk[hit, p1[hit]], targets[hit])
    frame = itemhead_run.per_user(record, "P1")
    assert np.allclose(frame["NDCG@10"], rank_metrics(p1, (10,))["NDCG@10"])


def test_the_committed_files_give_the_records_ranks_again(record, split):
    check = itemhead_run.rederive(record, split, n_users=12)
    assert set(check) == {"p1", "p2"} and all(c["users"] == 12 for c in check.values())


def test_a_record_altered_by_hand_does_not_pass(record, split):
    altered = json.loads(json.dumps(record))
    altered["p2"]["ranks"] = [(r + 3) % 20 for r in altered["p2"]["ranks"]]
    with pytest.raises(AssertionError, match="scored again"):
        itemhead_run.rederive(altered, split, n_users=12)


def _curve_record(*curve):
    return {"points": [{"targets": 1000 * (i + 1), "valid": {"per_user": list(c)}} for i, c in enumerate(curve)]}


def test_the_curve_words_follow_paired_tests_of_the_kept_models_against_the_best():
    rng = np.random.default_rng(0)
    low = rng.uniform(0.0, 0.2, 300)
    mid = low + rng.uniform(0.05, 0.1, 300)  # every user better: p at its floor
    high = mid + rng.uniform(0.05, 0.1, 300)
    assert "still rising" in itemhead_run.plateau_words(_curve_record(low, mid, high))
    assert "lowered it" in itemhead_run.plateau_words(_curve_record(low, high, mid))
    noise = mid + rng.normal(0, 0.05, 300)
    words = itemhead_run.plateau_words(_curve_record(low, mid, noise))
    if noise.mean() > mid.mean():  # the best is the last point, and the step to it is noise
        assert "from 2,000 targets on" in words and "cannot say" in words
    else:
        assert "from 2,000 targets on" in words and "does not lift it" in words
    assert paired_test(pd.Series(noise), pd.Series(mid))["p_value"] >= 0.05


def test_the_record_facts_state_the_records_own_numbers(search, record):
    facts = itemhead_run.record_facts(record, search, seed=0, n_bootstrap=200)
    chosen = next(p for p in record["points"] if p["targets"] == record["chosen_targets"])
    assert facts["head_chosen_valid"] == pytest.approx(np.mean(chosen["valid"]["per_user"]))
    last = record["points"][-1]["targets"]
    assert facts["head_chosen_share"] == pytest.approx(100 * record["chosen_targets"] / last)
    assert facts["head_passes"] in ("once", "twice")
    assert facts["head_hours"] == pytest.approx(record["train_seconds"] / 3600)
    assert facts["head_proxy"] == search["targets"] and facts["head_pass"] == record["targets_per_pass"]
    assert facts["head_kept"].endswith(f" and {record['points'][-1]['targets']:,}")
    assert facts["head_kept"].count(",") >= len(record["points"]) - 2
    assert facts["head_setting"] == itemhead_run.setting_words(record["settings"])
    assert "bfloat16" not in facts["head_dtype"] and "," not in facts["head_machine"]


def test_a_run_of_another_length_is_told_with_its_own_best_point_and_the_test_against_it(record):
    rng = np.random.default_rng(1)
    mine = rng.uniform(0, 0.3, 300)
    other = np.clip(mine - 0.05 + rng.normal(0, 0.01, 300), 0, None)  # lower for almost every user
    fake = {"points": [{"targets": 194_342, "valid": {"ndcg10": float(mine.mean()), "per_user": mine.tolist()}}],
            "other_runs": [{"passes": 1.0, "train_seconds": 5400.0, "machine": "Intel(R) Xeon(R) Processor, 2 cores",
                            "points": [
                {"targets": 4_000, "valid": {"ndcg10": 0.0, "per_user": [0.0] * 300}},
                {"targets": 97_171, "valid": {"ndcg10": float(other.mean()), "per_user": other.tolist()}}]}]}
    words = itemhead_run.runs_words(fake)
    assert "over the data once (1.5 hours of one core of Intel Xeon)" in words and "after 97,171 targets" in words
    assert "significantly better than that one" in words
    assert itemhead_run.runs_words({"points": fake["points"]}) == ""
    assert itemhead_run.passes_words(2) == "twice" and itemhead_run.passes_words(1.5) == "1.5 times"


def test_a_tie_with_the_centre_keeps_the_centre():
    centre = np.random.default_rng(2).uniform(0.05, 0.2, 300)
    tie = centre.copy()
    tie[:150] += 0.02  # higher for half the users, lower for the others: a higher mean, by a hair
    tie[150:] -= 0.0199
    assert tie.mean() > centre.mean() and paired_test(pd.Series(tie), pd.Series(centre))["p_value"] > 0.5
    entry = lambda s, v: {"setting": s, "ndcg10": float(np.mean(v)), "per_user": list(v)}  # noqa: E731
    c, x = dict(itemhead_run.CENTRE), {**itemhead_run.CENTRE, "lr": 3e-3}
    assert itemhead_run.chosen({"centre": c, "entries": {"c": entry(c, centre), "x": entry(x, tie)}}) == c
    clear = centre + 0.05  # higher for every user
    assert itemhead_run.chosen({"centre": c, "entries": {"c": entry(c, centre), "x": entry(x, clear)}}) == x
    assert itemhead_run.chosen({"centre": c, "entries": {"c": entry(c, clear), "x": entry(x, centre)}}) == c
    tied = {"centre": c, "entries": {"c": entry(c, centre), "x": entry(x, tie)}}
    assert "learning rate 0.003" in itemhead_run.choice_words(tied) and "the centre stays" in itemhead_run.choice_words(tied)
    assert itemhead_run.choice_words({"centre": c, "entries": {"c": entry(c, centre), "x": entry(x, clear)}}) == ""
    # without the centre among the entries, the best mean
    assert itemhead_run.chosen({"centre": c, "entries": {"x": entry(x, tie), "y": entry(c | {"lr": 1.0}, centre)}}) == x


def test_the_search_table_marks_the_chosen_setting_once(search):
    table = itemhead_run.search_table(search)
    marked = [s for s in table.index if s.endswith(" (chosen)")]
    assert len(marked) == 1 and len(table) == len(search["entries"])
    changed = {k: v for k, v in itemhead_run.chosen(search).items() if search["centre"][k] != v}
    assert marked[0] == ("the centre (chosen)" if not changed else marked[0])
    assert all(itemhead_run._changed(k, v) in marked[0] for k, v in changed.items())
