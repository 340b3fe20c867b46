"""Write the small Amazon Reviews 2023 fixture (real field names and file format).

    python tests/data/make_amazon_fixture.py

``amazon_reviews.jsonl.gz``: 48 reviews by 9 users of 9 products, in the order
the dataset's files have (not chronological), with product variants (``asin``
differs from ``parent_asin``), repeated reviews of the same product by the same
user, and a user and a product that only a repeated k-core removes.
``meta_amazon.jsonl.gz``: metadata of 8 of the 9 products.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 7


def reviews() -> list[dict]:
    rng = np.random.default_rng(SEED)
    users = [f"AE{i:02d}USERX{chr(65 + i)}Q" for i in range(9)]
    parents = [f"B0{i:02d}PARENT" for i in range(9)]
    pairs = set()
    # a dense block: users 0-5 x products 0-5, about 70% filled
    for u in range(6):
        for p in range(6):
            if rng.random() < 0.7:
                pairs.add((u, p))
    # user 6: three reviews, one of product 6, which only users 6 and 7 review
    pairs |= {(6, 0), (6, 1), (6, 6), (7, 6), (7, 2), (7, 3), (7, 4)}
    # user 8 reviews product 7 and 8 only (both rare): gone in any core
    pairs |= {(8, 7), (8, 8), (0, 7)}
    rows = []
    t0 = 1_600_000_000_000
    for u, p in sorted(pairs):
        ts = t0 + int(rng.integers(0, 400)) * 86_400_000 + int(rng.integers(0, 86_400_000))
        variant = f"B0{p:02d}VAR{int(rng.integers(0, 2))}" if p % 3 == 0 else parents[p]
        rows.append({"rating": float(rng.integers(1, 6)), "title": f"Review {len(rows)}",
                     "text": "Works as described.", "images": [], "asin": variant,
                     "parent_asin": parents[p], "user_id": users[u], "timestamp": ts,
                     "helpful_vote": int(rng.integers(0, 4)), "verified_purchase": bool(rng.random() < 0.8)})
    # repeated reviews: the same user and product later (another variant), and one exact copy
    rows.append({**rows[0], "timestamp": rows[0]["timestamp"] + 5 * 86_400_000, "title": "Bought again"})
    rows.append({**rows[3], "asin": rows[3]["parent_asin"] + "X", "timestamp": rows[3]["timestamp"] + 1000})
    rows.append(dict(rows[5]))
    # two reviews by one user at the same millisecond (a tie the loader must keep in file order)
    rows.append({**rows[1], "parent_asin": parents[5], "asin": parents[5], "timestamp": rows[2]["timestamp"]})
    order = rng.permutation(len(rows))  # the files are not sorted by time
    return [rows[i] for i in order]


def meta() -> list[dict]:
    return [{"main_category": "All Beauty", "title": f"Product {i} Shampoo" if i != 4 else "  ",
             "average_rating": 4.5, "rating_number": 10, "features": [], "description": [],
             "price": None, "images": [], "videos": [], "store": "Store",
             "categories": [] if i % 2 else ["Beauty", "Hair Care"], "details": {},
             "parent_asin": f"B0{i:02d}PARENT", "bought_together": None} for i in range(8)]


def write(path: Path, records: list[dict]) -> None:
    text = "".join(json.dumps(r) + "\n" for r in records).encode()
    path.write_bytes(gzip.compress(text, mtime=0))


if __name__ == "__main__":
    write(HERE / "amazon_reviews.jsonl.gz", reviews())
    write(HERE / "meta_amazon.jsonl.gz", meta())
