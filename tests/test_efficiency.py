"""The efficiency meter against quantities known by construction."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from recnotes.evaluate import EfficiencyMeter, count_params, flops_per_request, latency_ms, measure
from recnotes.evaluate.efficiency import EFFICIENCY_METRICS, request


def test_count_params():
    assert count_params(torch.nn.Linear(3, 4)) == 3 * 4 + 4

    class Classic:  # a non-torch model: its learned arrays count
        def __init__(self):
            self.B = np.zeros((5, 5))
            self.bias = torch.zeros(7)
            self.name = "Classic"

    assert count_params(Classic()) == 25 + 7

    class Declared:
        n_params = 123

    assert count_params(Declared()) == 123


def test_flops_of_a_matrix_product():
    x, w = torch.randn(1, 8), torch.randn(8, 16)
    assert flops_per_request(lambda: x @ w) == 2 * 8 * 16
    assert flops_per_request(lambda: np.ones(3) @ np.ones(3)) == 0  # not PyTorch: not counted


def test_latency_percentiles_bound_a_known_sleep():
    out = latency_ms(lambda: time.sleep(0.002), repeats=20, warmup=1)
    assert set(out) == {"latency_p50_ms", "latency_p95_ms"}
    assert 2.0 <= out["latency_p50_ms"] <= out["latency_p95_ms"]
    with pytest.raises(ValueError, match="repeats"):
        latency_ms(lambda: None, repeats=0)


def test_measure_sees_time_and_a_large_allocation():
    with measure() as base:
        time.sleep(0.01)
    with measure() as m:
        block = np.ones(200 * 2 ** 20 // 8)  # 200 MiB, touched
        time.sleep(0.05)
        del block
    assert m.seconds >= 0.05 and base.seconds >= 0.01
    assert m.peak_memory_mb - base.peak_memory_mb >= 150
    assert 150 <= m.added_memory_mb <= m.peak_memory_mb  # the 200 MiB block, not the whole process
    assert base.added_memory_mb < 100


def test_meter_collects_the_design_metric_names():
    meter = EfficiencyMeter()
    with meter.train():
        for pause in (0.01, 0.03):
            with meter.epoch():
                time.sleep(pause)
    with meter.evaluation(n_users=100) as m:
        time.sleep(0.02)
    model = torch.nn.Linear(4, 6)
    meter.params(model)
    meter.flops(lambda: model(torch.zeros(1, 4)))
    meter.latency(request(type("M", (), {"score": lambda self, h: model(torch.zeros(1, 4))})(),
                          np.array([1, 2])), repeats=5)
    out = meter.as_dict()
    assert list(out) == [k for k in EFFICIENCY_METRICS if k in out]
    assert set(out) == set(EFFICIENCY_METRICS)
    assert out["seconds_per_epoch"] == pytest.approx(0.02, abs=0.015)
    assert out["train_seconds"] >= 0.04
    assert out["eval_users_per_second"] == pytest.approx(100 / m.seconds)
    assert out["params"] == 4 * 6 + 6 and out["flops_per_request"] == 2 * 4 * 6
    assert out["peak_memory_mb"] > 0


def test_request_flops_count_itemknns_similarities_and_nothing_for_the_counting_models(split):
    from recnotes.evaluate.efficiency import cost_row, request_flops
    from recnotes.models import ItemKNN, Popularity, Random

    knn = ItemKNN(k=10).fit(split)
    history = np.asarray(split.histories("test")[5])
    # brute force: every stored similarity in the rows of the history's films, a product and a sum each
    touched = sum(int(knn.sim[int(i)].nnz) for i in history)
    assert request_flops(knn, history) == 2 * touched
    assert request_flops(Popularity().fit(split), history) == 0 and request_flops(Random().fit(split), history) == 0

    class Dense(torch.nn.Module):  # no count of its own: PyTorch's, 2 * n * n for one product
        def __init__(self, n):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(n, n))

        def score(self, histories):
            return torch.ones(1, self.w.shape[0]) @ self.w

    assert request_flops(Dense(32), history) == 2 * 32 * 32
    row = cost_row(knn, split, history, 12.5, users_per_second=3.0, repeats=2, warmup=0)
    assert row["training (s)"] == 12.5 and row["users / s"] == 3.0 and row["FLOPs / request"] == 2 * touched
    assert row["parameters"] == count_params(knn) and row["latency p50 (ms)"] > 0
