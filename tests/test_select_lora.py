"""``scripts/select_lora.py``'s bookkeeping: a setting's fields, its key, and the merge of records
computed side by side (the best row and every test recomputed over the union)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("select_lora", ROOT / "scripts" / "select_lora.py")
select_lora = importlib.util.module_from_spec(spec)
spec.loader.exec_module(select_lora)


def test_a_setting_changes_only_what_it_names():
    s = select_lora.parse_setting("lr=2e-3,window=40", select_lora.CENTRE, 2000)
    assert s == {**select_lora.CENTRE, "lr": 0.002, "window": 40, "targets": 2000}
    r = select_lora.parse_setting("objective=rank,targets=400", select_lora.CENTRE, 2000)
    assert r["objective"] == "rank" and r["targets"] == 400 and r["lr"] == select_lora.CENTRE["lr"]
    assert select_lora.key_of(s) != select_lora.key_of(select_lora.parse_setting("", select_lora.CENTRE, 2000))
    with pytest.raises(SystemExit):
        select_lora.parse_setting("learning_rate=1", select_lora.CENTRE, 2000)


def _record(entries: dict[str, np.ndarray]) -> dict:
    head = {"what": select_lora.WHAT, "version": 2, "targets": 2000, "users": 50, "dtype": "bfloat16",
            "centre": select_lora.CENTRE, "negatives": 4}
    return {**head, "per_user": {k: {"mean": v.tolist(), "sum": (v / 2).tolist()} for k, v in entries.items()},
            "results": {k: {"lr": 1.0} for k in entries}}


def test_merged_records_are_summarised_over_their_union(tmp_path):
    from recnotes.evaluate import bootstrap_ci, paired_test

    rng = np.random.default_rng(0)
    a = {"A": rng.random(50), "B": rng.random(50)}
    b = {"C": rng.random(50) + 0.3}  # clearly the best, only in the second record
    paths = []
    for name, entries in (("a", a), ("b", b)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(_record(entries)))
        paths.append(path)
    target = tmp_path / "merged.json"
    assert select_lora.merge(target, paths, bootstrap_ci, paired_test) == 0
    merged = json.loads(target.read_text())
    assert merged["best"] == {"setting": "C", "reduce": "mean"}
    assert set(merged["results"]) == {"A", "B", "C"}
    # each row's test is against the best of the union, as computed by hand
    for key, values in (("A", a["A"]), ("B", b["C"] / 2)):
        reduce = "mean" if key == "A" else "sum"
        entry = merged["results"][key if key == "A" else "C"][reduce]
        test = paired_test(values, b["C"], seed=0)
        assert entry["diff_vs_best"] == pytest.approx(test["mean_diff"])
        assert entry["p_vs_best"] == pytest.approx(test["p_value"])
        assert entry["valid_ndcg10"] == pytest.approx(values.mean())
    # a record of another budget is refused
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**_record({"D": rng.random(50)}), "targets": 400}))
    with pytest.raises(SystemExit):
        select_lora.merge(target, [other], bootstrap_ci, paired_test)


def test_a_setting_over_the_budget_is_shown_but_not_chosen(tmp_path):
    from recnotes.evaluate import bootstrap_ci, paired_test

    rng = np.random.default_rng(1)
    short, long = rng.random(40), rng.random(40) + 0.3  # the long window is clearly better
    record = _record({"short": short, "long": long})
    record["results"] = {"short": {"window": 40}, "long": {"window": 80}}
    source = tmp_path / "a.json"
    source.write_text(json.dumps(record))
    target = tmp_path / "merged.json"
    select_lora.merge(target, [source], bootstrap_ci, paired_test, max_window=40, reason="test")
    merged = json.loads(target.read_text())
    assert merged["budget"] == {"max_window": 40, "reason": "test"}
    assert merged["best"] == {"setting": "short", "reduce": "mean"}
    assert merged["results"]["long"]["within_budget"] is False
    assert merged["results"]["long"]["mean"]["diff_vs_best"] == pytest.approx((long - short).mean())
