"""The long run (the LLM fine-tuned over the whole training data): its config covers every
training title once, its committed record's ranks give its metrics, its committed adapters load
with peft's own loader and score as the book's fine-tuned ranker does, and the re-derivation
check fails on a record that the adapters do not reproduce."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from recnotes import longrun
from recnotes.evaluate.metrics import rank_metrics

ROOT = Path(__file__).resolve().parents[1]
RECORDS = sorted((ROOT / longrun.RECORD_DIR).glob("lora-*.json"))

torch.set_num_threads(1)


def test_whole_config_covers_every_training_title_once(split):
    config = longrun.whole_config("book", split=split, profile="full")
    total = sum(len(seq) for seq in split.train)
    s = config.settings()
    assert s.n_targets == total  # the full profile does not cap the long run
    assert s.keep[-1] == total and list(s.keep) == sorted(s.keep)
    assert set(longrun.KEEP) <= set(s.keep)
    # chapter 6's settings otherwise: only the length differs
    from recnotes.llm_experiments import LoRAConfig

    book = LoRAConfig(profile="full").settings()
    assert (s.lr, s.rank, s.layers, s.window) == (book.lr, book.rank, book.layers, book.window)
    # a small profile caps it as it caps the book's run
    assert longrun.whole_config("book", split=split, profile="ci").settings().n_targets < 100


@pytest.mark.skipif(not RECORDS, reason="no long-run record committed")
@pytest.mark.parametrize("path", RECORDS, ids=lambda p: p.stem)
def test_record_ranks_give_its_metrics_and_cover_the_whole_data(path):
    record = json.loads(path.read_text())
    points = record["points"]
    assert points[0]["targets"] == 0 and points[-1]["targets"] == record["targets"] == record["train_targets"]
    assert len(points) >= 9  # zero-shot and at least 8 kept points up to 100%
    assert points[-1]["share"] == 1.0
    assert [p["targets"] for p in points] == sorted(p["targets"] for p in points)
    assert [p["seconds"] for p in points] == sorted(p["seconds"] for p in points)
    for p in points:
        for stage, users in (("test", record["test_users"]), ("valid", record["valid_users"])):
            ranks = np.asarray(p[stage]["ranks"])
            assert len(ranks) == len(users) and ranks.min() >= 0 and ranks.max() < 20
            # the metric stored is the one the evaluator computes from these ranks
            assert p[stage]["ndcg10"] == pytest.approx(float(np.mean(rank_metrics(ranks, (10,))["NDCG@10"])))
    for key in ("command", "machine", "dtype", "versions", "train_seconds", "settings"):
        assert record[key]
    assert (ROOT / record["adapters"]["folder"] / "adapter_config.json").is_file()


def test_chosen_settings_are_the_validation_records_best():
    path = ROOT / "book" / "tuning" / "LoRA-whole.json"
    record = json.loads(path.read_text())
    best = record["results"][record["best"]["setting"]]
    from recnotes.llm_experiments import LoRAConfig

    chosen = longrun.whole_config("chosen", profile="full").tuning
    assert {f: getattr(chosen, f) for f in ("lr", "rank", "layers", "window")} == \
           {f: best[f] for f in ("lr", "rank", "layers", "window")}
    assert best["objective"] == "lm" and chosen.alpha == 2 * chosen.rank
    assert longrun.SETTINGS["chosen"]["reduce"] == record["best"]["reduce"]
    assert LoRAConfig().tuning.n_targets < record["targets"]  # chosen at a proxy longer than the book's run


def test_check_rederived_accepts_equal_ranks_and_fails_on_others():
    rng = np.random.default_rng(0)
    users = list(range(0, 400, 2))
    ranks = rng.integers(0, 20, len(users))
    record = {"test_users": users, "points": [{"test": {"ranks": ranks.tolist()}}]}
    out = longrun.check_rederived(record, users[::-1], ranks[::-1])  # any order of the same users
    assert out["same_rank_share"] == 1.0 and out["ndcg10_diff"] == 0.0
    moved = ranks.copy()
    moved[:100] = (moved[:100] + 5) % 20  # half of the users elsewhere
    with pytest.raises(AssertionError, match="tolerance"):
        longrun.check_rederived(record, users, moved)
    with pytest.raises(AssertionError, match="not in the long-run record"):
        longrun.check_rederived(record, [1], [0])


@pytest.mark.skipif(not (ROOT / longrun.RECORD_DIR / "lora-chosen").is_dir(), reason="no committed adapters")
def test_committed_adapters_load_with_peft_and_score_as_the_book_does(split):
    """``PeftModel.from_pretrained`` over the pinned model scores as the training path does (a
    FineTunedLLMRanker whose adapters get the file's weights by name), adapters kept, and as
    the book scores them (:func:`with_adapters`: loaded by peft and merged)."""
    from peft import PeftModel, set_peft_model_state_dict
    from safetensors.torch import load_file

    from recnotes.models.llm import HFBackend, LLMRanker, item_titles
    from recnotes.models.llm.finetune import FineTunedLLMRanker, LoRASettings, _quiet_peft, with_adapters
    from recnotes.evaluate import sample_candidates

    folder = ROOT / longrun.RECORD_DIR / "lora-chosen"
    record = longrun.read_record("chosen", ROOT)
    s = record["settings"]
    base = HFBackend.from_pretrained(device="cpu", dtype=torch.float32)
    titles = item_titles(split.data)
    settings = LoRASettings(**{**s, "targets": tuple(s["targets"]), "keep": tuple(s["keep"])})
    book = FineTunedLLMRanker(base, titles, settings)
    with _quiet_peft():
        set_peft_model_state_dict(book.backend.model, load_file(str(folder / "adapter_model.safetensors")))
    with _quiet_peft():  # peft calls a method transformers marks as deprecated: not this test's subject
        peft_model = PeftModel.from_pretrained(HFBackend.from_pretrained(device="cpu", dtype=torch.float32).model,
                                               str(folder))
    theirs = LLMRanker(HFBackend(peft_model, base.tokenizer, name=base.name), titles, "likelihood", "list",
                       s["window"] - 1)
    cands = sample_candidates(split, n_users=3, seed=0)
    hist = split.histories("test")
    h = [hist[u] for u in cands.users]
    ours_scores = book.score_candidates(h, cands.items).numpy()
    np.testing.assert_allclose(theirs.score_candidates(h, cands.items).numpy(), ours_scores, atol=1e-5)
    # merged by peft (merge_and_unload), as make book scores them: equal to float32 rounding
    merged = LLMRanker(with_adapters(base, folder), titles, "likelihood", "list", s["window"] - 1)
    np.testing.assert_allclose(merged.score_candidates(h, cands.items).numpy(), ours_scores, atol=1e-4)
    # and the adapters are not zero: the fine-tuned model scores otherwise than the pinned one
    zero = LLMRanker(base, titles, "likelihood", "list", s["window"] - 1).score_candidates(h, cands.items).numpy()
    assert np.abs(zero - ours_scores).max() > 1e-2


def _synthetic_record(rng, n_users=150, sizes=(0, 1000, 2000, 4000, 98000)):
    users = sorted(rng.choice(900, n_users, replace=False).tolist())
    points = []
    for i, k in enumerate(sizes):  # better with more targets up to 4,000, then flat
        ranks = np.clip(rng.integers(0, 20, n_users) - 3 * min(i, 3), 0, 19)
        points.append({"targets": k, "share": k / sizes[-1], "seconds": k / 40,
                       "test": {"ranks": ranks.tolist()}, "valid": {"ranks": ranks[:50].tolist()}})
    return {"test_users": users, "valid_users": users[:50], "points": points, "targets": sizes[-1],
            "settings_name": "chosen"}


def test_curve_and_plateau_against_brute_force():
    record = _synthetic_record(np.random.default_rng(0))
    frame = longrun.curve(record, n_bootstrap=200)
    for row, p in zip(frame.itertuples(), record["points"]):
        ranks = np.asarray(p["test"]["ranks"])
        want = np.mean([1 / np.log2(r + 2) if r < 10 else 0.0 for r in ranks])
        assert row.ndcg10 == pytest.approx(want) and row.low <= want <= row.high
    flat = longrun.plateau(record)
    means = {p["targets"]: frame.set_index("targets").loc[p["targets"], "ndcg10"] for p in record["points"][1:]}
    assert flat["best"] == max(means, key=means.get)
    # from the plateau's first point on, no point is significantly below the best (Holm)
    assert all(flat["p_holm"].get(k, 1.0) >= 0.05 for k in means if k >= flat["first_not_below"])
    assert flat["first_not_below"] > 1000  # the first points are far below
    result = longrun.eval_result(record)
    assert result.model == longrun.MODEL_NAMES["chosen"] and list(result.users) == record["test_users"]


SIZE_RECORDS = sorted(p for p in (ROOT / longrun.RECORD_DIR).glob("*.json") if p.stem in longrun.SIZES)


def test_size_config_is_the_books_in_budget_recipe_on_another_model():
    from recnotes.llm_experiments import LoRAConfig

    book = LoRAConfig(profile="full")
    for name, model in longrun.SIZES.items():
        config = longrun.size_config(name, profile="full")
        assert config.llm_model == model
        assert config.settings() == book.settings()  # only the model differs
        assert longrun.record_path(name).name == f"{name}.json" and longrun.adapters_dir(name).name == name
    assert longrun.record_path("chosen").name == "lora-chosen.json"
    with pytest.raises(ValueError, match="unknown model size"):
        longrun.size_config("gpt-5")


@pytest.mark.skipif(not SIZE_RECORDS, reason="no size record committed")
@pytest.mark.parametrize("path", SIZE_RECORDS, ids=lambda p: p.stem)
def test_size_record_ranks_give_its_metrics_and_controls(path):
    record = json.loads(path.read_text())
    points = record["points"]
    assert points[0]["targets"] == 0 and points[-1]["targets"] == record["targets"]
    assert record["targets"] >= longrun.size_config(path.stem, profile="full").settings().n_targets
    for p in points:
        for stage, users in (("test", record["test_users"]), ("valid", record["valid_users"])):
            ranks = np.asarray(p[stage]["ranks"])
            assert len(ranks) == len(users) and ranks.min() >= 0 and ranks.max() < 20
            assert p[stage]["ndcg10"] == pytest.approx(float(np.mean(rank_metrics(ranks, (10,))["NDCG@10"])))
    # the controls: the prior alone for the zero-shot and final points, on the same users
    for k in (0, record["targets"]):
        prior = longrun.prior_per_user(record, k)
        assert list(prior.index) == record["test_users"]
        assert prior["NDCG@10"].between(0, 1).all()
        assert 0 <= record["controls"]["top_popular"][str(k)] <= 1
    assert longrun.model_name(record, 0).startswith("LLMRanker[likelihood,list], ")
    assert longrun.eval_result(record).model == longrun.model_name(record)
    assert record["model"] == longrun.SIZES[path.stem] and record["parameters"] > 2e8
    assert (ROOT / record["adapters"]["folder"] / "adapter_config.json").is_file()


@pytest.mark.skipif(not SIZE_RECORDS, reason="no size record committed")
def test_size_comparison_tests_the_rows_it_names_and_states_the_record():
    from scipy import stats

    record = json.loads(SIZE_RECORDS[0].read_text())
    zero, fine = longrun.per_user(record, 0), longrun.per_user(record, record["targets"])
    table, facts, answer = longrun.size_comparison(record, seed=0)
    tests = {t["vs"]: t for t in table.attrs["tests"]}
    assert list(tests) == ["Gemma: fine-tuned vs zero-shot", "Gemma zero-shot: with history vs prior alone",
                           "Gemma fine-tuned: with history vs prior alone"]
    diff = (fine["NDCG@10"] - zero["NDCG@10"]).to_numpy()
    assert tests["Gemma: fine-tuned vs zero-shot"]["mean_diff"] == pytest.approx(diff.mean())
    # the sign-flip test agrees with a t-test where the difference is clear, and not otherwise by much
    assert (tests["Gemma: fine-tuned vs zero-shot"]["p_value"] < 0.05) == (stats.ttest_1samp(diff, 0).pvalue < 0.05)
    assert facts["gemma_targets"] == record["targets"] and facts["gemma_blocks"] == record["blocks"]
    assert facts["gemma_fine"] == pytest.approx(fine["NDCG@10"].mean())
    assert facts["gemma_vs_smol"].startswith("the comparison is made in the full profile only")
    assert facts["gemma_meaning"] == "" and answer.endswith(" fine-tuned.")
    assert all(name.startswith("gemma_") for name in facts)
    # compared with itself as the book's model: no difference, so size does not change the answer
    table, facts, answer = longrun.size_comparison(record, {"zero-shot list": zero, "fine-tuned": fine}, seed=0)
    same = {t["vs"]: t for t in table.attrs["tests"]}["fine-tuned: Gemma vs SmolLM2"]
    assert same["mean_diff"] == 0 and same["p_value"] == 1
    assert facts["gemma_meaning"] == "At this budget, twice the parameters do not change the answer."
    assert "not significantly different from the smaller model's" in answer
    check = {"ndcg10_now": 0.5, "ndcg10_record": 0.5, "same_rank_share": 0.9, "users": 100}
    assert longrun.size_comparison(record, check=check)[1]["gemma_rederived"] == \
        "on the first 100 of those users, NDCG@10 0.500 against the record's 0.500 on the same users, 90% of them " \
        "at the same rank"
