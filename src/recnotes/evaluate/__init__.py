"""Evaluation: protocols P1 (full ranking) and P2 (candidate ranking), metrics,
uncertainty and the efficiency meter."""

from .efficiency import EfficiencyMeter, count_params, flops_per_request, latency_ms, measure
from .metrics import beyond_accuracy, rank_metrics, target_ranks
from .protocols import (Candidates, EvalResult, evaluate_candidates, evaluate_full, model_name,
                        sample_candidates, seed_mean)
from .segments import (RecentItems, head_items, history_lengths, history_segments, item_popularity,
                       segment_table, segment_winners, target_segments)
from .uncertainty import bootstrap_ci, bootstrap_table, paired_test, summary_table

__all__ = [
    "EvalResult", "Candidates", "evaluate_full", "sample_candidates", "evaluate_candidates",
    "model_name", "seed_mean", "rank_metrics", "target_ranks", "beyond_accuracy", "bootstrap_ci",
    "bootstrap_table", "summary_table", "paired_test", "EfficiencyMeter", "measure", "latency_ms",
    "count_params", "flops_per_request", "history_lengths", "history_segments", "item_popularity",
    "head_items", "target_segments", "RecentItems", "segment_table", "segment_winners",
]
