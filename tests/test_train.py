"""The trainer: windows, learning a deterministic sequence, seeds, early stopping,
resumable checkpoints and the experiment cache."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from recnotes.data import Interactions, leave_one_out
from recnotes.evaluate import evaluate_full
from recnotes.models import GPTRec, LSTM
from recnotes.models.training import TrainConfig, seed_everything, train, training_windows

torch.set_num_threads(1)


def cycle_split(n_users: int = 48, n_items: int = 16, length: int = 12, seed: int = 0):
    """Every user walks the same hidden cycle over the items: the next item is a
    deterministic function of the previous one; users start at random points."""
    rng = np.random.default_rng(seed)
    cycle = rng.permutation(n_items) + 1
    rows = []
    for u in range(n_users):
        start = rng.integers(n_items)
        rows += [(u, int(cycle[(start + t) % n_items]), t) for t in range(length)]
    return leave_one_out(Interactions.from_frame(pd.DataFrame(rows, columns=["user", "item", "timestamp"])))


def test_windows_cover_every_target_once_and_shift_by_one():
    seqs = [np.arange(1, 12), np.array([3, 4]), np.array([5])]
    x, y = training_windows(seqs, max_len=4)
    targets = y[y != 0]
    assert sorted(targets.tolist()) == sorted(list(range(2, 12)) + [4])
    assert torch.equal(x != 0, y != 0)
    for row_x, row_y in zip(x, y):
        real = row_y != 0
        assert torch.equal(row_y[real], row_x[real] + 1)  # each target is the next item


@pytest.mark.parametrize("stride", [1, 2, 3, 4])
def test_overlapping_windows_count_each_target_once_with_enough_context(stride):
    seq = np.arange(1, 15)
    x, y = training_windows([seq], max_len=4, stride=stride)
    assert sorted(y[y != 0].tolist()) == list(range(2, 15))
    for row_x, row_y in zip(x, y):
        for t in np.flatnonzero(row_y.numpy()):
            assert row_y[t] == row_x[t] + 1  # the target is the next item of its input
            # context: all real inputs up to t; at least max_len - stride unless at the start
            context = int((row_x[: t + 1] != 0).sum())
            assert context >= min(4 - stride + 1, int(row_x[t]))  # input v has v items before it


def test_windows_reject_empty_data_and_tiny_max_len():
    with pytest.raises(ValueError, match="no training data"):
        training_windows([np.array([1]), np.array([], np.int64)], max_len=5)
    with pytest.raises(ValueError, match="max_len"):
        training_windows([np.arange(1, 5)], max_len=1)


@pytest.fixture(scope="module")
def learned():
    split = cycle_split()
    model = GPTRec(dim=32, n_layers=1, n_heads=2, max_len=12, dropout=0.0,
                   train_config=TrainConfig(lr=1e-2, weight_decay=0.0, batch_size=16, max_epochs=25,
                                            decay_epochs=25, warmup_epochs=1, patience=25))
    model.fit(split, progress=False)
    return split, model


def test_loss_decreases_and_gptrec_learns_the_cycle(learned):
    split, model = learned
    losses = [h["loss"] for h in model.history]
    assert losses[-1] < 0.25 * losses[0]
    assert all(b < a for a, b in zip(losses[:5], losses[1:6]))  # steadily down at first
    hr1 = evaluate_full(model, split, stage="test", ks=(1,)).per_user["HR@1"].mean()
    assert hr1 > 0.9


def test_history_records_curves(learned):
    _, model = learned
    assert [h["epoch"] for h in model.history] == list(range(1, len(model.history) + 1))
    assert all({"loss", "valid_ndcg10", "seconds", "lr"} <= set(h) for h in model.history)


def _tiny(seed: int, model_cls=GPTRec, build_for=None, **train_kw):
    cfg = TrainConfig(seed=seed, batch_size=16, **{"max_epochs": 3, "patience": 5, **train_kw})
    if model_cls is GPTRec:
        model = GPTRec(dim=16, n_layers=1, n_heads=2, max_len=12, dropout=0.2, train_config=cfg)
    else:
        model = LSTM(embedding_dim=8, hidden=16, max_len=12, dropout=0.2, train_config=cfg)
    if build_for is not None:  # build with seeded initial weights, to call train() directly
        seed_everything(seed)
        model.build(build_for.n_items)
    return model


@pytest.mark.parametrize("model_cls", [GPTRec, LSTM])
def test_same_seed_gives_identical_scores(model_cls):
    split = cycle_split()
    hist = split.histories("test")
    a = _tiny(0, model_cls).fit(split, progress=False).score(hist)
    b = _tiny(0, model_cls).fit(split, progress=False).score(hist)
    c = _tiny(1, model_cls).fit(split, progress=False).score(hist)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_early_stopping_restores_the_best_weights():
    split = cycle_split()
    model = _tiny(0, build_for=split, max_epochs=10, patience=2, smooth=0.0)
    scores = iter([0.1, 0.3, 0.2, 0.25, 0.9, 0.9])
    snapshots = []

    def metric(m, s):
        snapshots.append({k: v.clone() for k, v in m.state_dict().items()})
        return next(scores)

    history = train(model, split, model.train_config, progress=False, metric=metric)
    assert len(history) == 4  # best at epoch 2, then two epochs without improvement
    for k, v in model.state_dict().items():
        assert torch.equal(v, snapshots[1][k])


def test_interrupted_training_resumes_to_the_same_result(tmp_path):
    split = cycle_split()
    hist = split.histories("test")
    full = _tiny(0, build_for=split, max_epochs=4)
    ref_history = train(full, split, full.train_config, progress=False)

    class Interrupt(Exception):
        pass

    calls = []

    def interrupting(m, s):
        from recnotes.models.training import validation_ndcg
        calls.append(1)
        if len(calls) == 3:
            raise Interrupt
        return validation_ndcg(m, s)

    first = _tiny(0, build_for=split, max_epochs=4)
    with pytest.raises(Interrupt):
        train(first, split, first.train_config, checkpoint_dir=tmp_path, progress=False, metric=interrupting)
    resumed = _tiny(0, build_for=split, max_epochs=4)
    history = train(resumed, split, resumed.train_config, checkpoint_dir=tmp_path, progress=False)
    assert [h["loss"] for h in history] == [h["loss"] for h in ref_history]
    assert torch.equal(resumed.score(hist), full.score(hist))


def test_experiment_cache_loads_the_trained_model(tmp_path, monkeypatch):
    from recnotes.experiments import GPTRecConfig, run

    monkeypatch.setenv("RECNOTES_CACHE", str(tmp_path))
    split = cycle_split()
    cfg = GPTRecConfig(dim=16, n_layers=1, n_heads=2, max_len=12, batch_size=16, profile="smoke")
    first = run(cfg, split, progress=False)
    second = run(cfg, split, progress=False)
    assert not first.cached and second.cached
    assert (second.path / "model.safetensors").is_file()
    hist = split.histories("test")
    assert torch.equal(first.model.score(hist), second.model.score(hist))
    third = run(GPTRecConfig(dim=16, n_layers=1, n_heads=2, max_len=12, batch_size=16, profile="smoke",
                             seed=1), split, progress=False)
    assert not third.cached and third.path != first.path


def _run_cached(cache: str, barrier, queue) -> None:
    import os

    os.environ["RECNOTES_CACHE"] = cache
    torch.set_num_threads(1)
    from recnotes.experiments import GPTRecConfig, run

    cfg = GPTRecConfig(dim=16, n_layers=1, n_heads=2, max_len=12, batch_size=16, profile="smoke")
    split = cycle_split()
    barrier.wait()  # both ask at the same moment: without the lock, both would train
    r = run(cfg, split, progress=False)
    queue.put((r.cached, r.model.score(split.histories("test")).numpy()))


def test_two_processes_asking_for_one_model_train_it_once(tmp_path):
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue, barrier = ctx.Queue(), ctx.Barrier(2)
    procs = [ctx.Process(target=_run_cached, args=(str(tmp_path), barrier, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    out = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sorted(cached for cached, _ in out) == [False, True]  # one trained, the other waited and loaded
    np.testing.assert_array_equal(out[0][1], out[1][1])



def test_a_runs_validation_curve_counts_targets_and_seconds_up_to_each_evaluated_epoch(split):
    from recnotes.experiments import GPTRecConfig, Run

    history = [{"epoch": 1, "seconds": 2.0, "valid_ndcg10": 0.1}, {"epoch": 2, "seconds": 3.0},
               {"epoch": 3, "seconds": 4.0, "valid_ndcg10": 0.3}]
    r = Run(GPTRecConfig(), model=None, split=split, history=history)
    per_epoch = sum(1 for seq in split.train for _ in seq[1:])  # every position after a sequence's first
    assert r.targets_per_epoch == per_epoch
    curve = r.validation_curve()
    assert curve["epoch"].tolist() == [1, 3] and curve["ndcg10"].tolist() == [0.1, 0.3]
    assert curve["targets"].tolist() == [per_epoch, 3 * per_epoch] and curve["seconds"].tolist() == [2.0, 9.0]


def test_every_training_setting_of_a_neural_config_reaches_the_trainer():
    """The neural configs take their training fields from TrainConfig (written once): each one,
    set on a config, is the trainer's value, and the defaults are the trainer's."""
    from dataclasses import fields, replace

    from recnotes.experiments import CONFIGS, TRAINING_FIELDS, NeuralConfig

    trainer = {f.name: f.default for f in fields(TrainConfig)}
    assert set(TRAINING_FIELDS) == set(trainer) - {"grad_clip", "seed"}
    assert all(getattr(NeuralConfig(), name) == trainer[name] for name in TRAINING_FIELDS)
    neural = [cls for cls in CONFIGS.values() if issubclass(cls, NeuralConfig)]
    assert neural
    for cls in neural:
        plain = cls(profile="full")
        for name in TRAINING_FIELDS:  # 3 is under the full profile's cap on epochs
            assert getattr(replace(plain, **{name: 3}).train_config(), name) == 3, (cls.__name__, name)
        assert replace(plain, seed=5).train_config().seed == 5
