"""Numbers cited from papers, never measured here: each carries its source.

The LLMRank study {Hou et al., ECIR 2024} ranks 20 candidates (the next item and
19 items drawn uniformly from the whole catalogue) for sampled MovieLens-1M
users, with list-wise prompts (the history's last 50 titles), and reports
NDCG@K x 100.  Its comparison of LLMs is Table 3 of the ECIR version
("Recency-Focused" prompt); Pop and SASRec (trained on ML-1M) are in Table 2,
whose first arXiv version (May 2023) used the same 200 users as the LLM runs.
The values below are copied from the authors' table images in their
repository (RUCAIBox/LLMRank, ``assets/tab-3.png`` at commit 2d2384f, the
"ECIR'24 version"; ``assets/tab-2.png`` on the ``arxiv`` branch, commit
8484c36), divided by 100.  Their protocol differs from this book's P2 in the
dataset (ML-1M, not ML-100K), in negatives that may include watched films, and
in list-wise generation: a cited point and a measured one are not directly
comparable, and the book always draws them apart.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["LLMRANK", "LLMRANK_REFERENCE", "cited_frame"]

LLMRANK_REFERENCE = "hou2024llmrank"
_T3 = ("Hou et al. (ECIR 2024), LLMRank, Table 3 (ML-1M; 'Recency-Focused' prompt; LLM rows on 200 users); "
       "github.com/RUCAIBox/LLMRank assets/tab-3.png at commit 2d2384f")
_T2_V1 = ("Hou et al., LLMRank, arXiv 2305.08845 first version (May 2023), Table 2 (ML-1M, 200 users); "
          "github.com/RUCAIBox/LLMRank assets/tab-2.png on branch arxiv, commit 8484c36")

#: (model, parameters or None where unpublished, kind, NDCG@1, @5, @10, @20 x 100, source)
_ROWS = (
    ("Alpaca-7B", 7e9, "zero-shot LLM", 4.00, 13.92, 23.09, 31.54, _T3),
    ("Vicuna-13B", 13e9, "zero-shot LLM", 6.50, 14.75, 22.64, 33.42, _T3),
    ("LLaMA-2-70B-Chat", 70e9, "zero-shot LLM", 8.00, 25.42, 31.19, 34.52, _T3),
    ("ChatGPT (gpt-3.5-turbo)", None, "zero-shot LLM", 23.33, 42.07, 48.80, 53.73, _T3),
    ("GPT-4", None, "zero-shot LLM", 15.50, 40.65, 46.74, 48.42, _T3),
    ("Pop", None, "trained on ML-1M", 19.50, 40.70, 48.16, 51.78, _T2_V1),
    ("SASRec", None, "trained on ML-1M", 57.00, 73.14, 76.25, 77.47, _T2_V1),
)

#: one record per (model, k): the results format's keys, plus ``source`` and ``dataset``
LLMRANK: tuple[dict, ...] = tuple(
    {"protocol": "LLMRank-20", "model": model, "metric": "NDCG", "k": k, "value": round(v / 100, 4),
     "ci_low": None, "ci_high": None, "n_users": 200, "seed": None, "dataset": "ml-1m",
     "parameters": params, "kind": kind, "source": source, "reference": LLMRANK_REFERENCE}
    for model, params, kind, *values, source in _ROWS
    for k, v in zip((1, 5, 10, 20), values)
)


def cited_frame(k: int = 10) -> pd.DataFrame:
    """The cited NDCG@k, one row per model, with its kind, size and source."""
    rows = [r for r in LLMRANK if r["k"] == k]
    return pd.DataFrame([{"model": r["model"], "kind": r["kind"], "parameters": r["parameters"],
                          f"NDCG@{k}": r["value"], "dataset": r["dataset"], "users": r["n_users"],
                          "source": r["source"]} for r in rows])
