"""A practitioner's rerun, offline: chapters 6 and 9 with another LLM and another sentence
encoder (local Hugging Face folders) on another dataset (a folder in GroupLens' ML-1M format),
all three changed at once, in the smoke profile, as papermill runs the book.

* The LLM folder is written with ``save_pretrained`` from the pinned model's dequantized
  weights, cut to its bottom 12 blocks: a real model of the same family that differs from the
  pinned one in the facts the chapter glues (blocks and parameters), so a chapter that typed
  them, or read them from the default model, fails.  The encoder folder is a
  ``SentenceTransformer.save`` copy of the pinned MiniLM.
* The ML-1M folder is written from ML-100K (``::``-separated ``ratings.dat``, ``movies.dat``
  with ``|``-separated genres, ``users.dat``), keeping the first 400 users, so the chapter
  sees neither 943 users nor 1,682 films.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("execute", ROOT / "scripts" / "execute.py")
execute = importlib.util.module_from_spec(spec)
spec.loader.exec_module(execute)

pytestmark = pytest.mark.slow


def run_chapter(name: str, tmp: Path, results: Path, env: dict | None = None, **params) -> dict:
    """Execute a chapter from its source (smoke profile, ``book/`` as its folder) and return its
    glued values by name (their plain-text form); ``env``: variables set for it."""
    notebook = tmp / f"{name}.ipynb"
    execute.prepare(ROOT / "notebooks" / f"{name}.md", notebook)
    out = tmp / f"{name}.out.ipynb"
    env = {**os.environ, **(env or {}), "RECNOTES_RESULTS": str(results), "RECNOTES_PROFILE": "smoke", "RECNOTES_PROGRESS": "0",
           "TQDM_DISABLE": "1"}
    args = [arg for k, v in {"profile": "smoke", **params}.items() for arg in ("-p", k, str(v))]
    proc = subprocess.run([sys.executable, "-m", "papermill", str(notebook), str(out), "-k", "python3",
                           "--cwd", str(ROOT / "book"), "--no-progress-bar", *args],
                          capture_output=True, text=True, env=env, timeout=1500)
    nb = nbformat.read(out, as_version=4) if out.is_file() else None
    errors = [o for c in (nb.cells if nb else []) if c.cell_type == "code" for o in c.get("outputs", [])
              if o.output_type == "error"]
    assert proc.returncode == 0 and not errors, (
        f"{name} stopped with {params}:\n" + ("\n".join(errors[0].get("traceback", []))[-6000:] if errors
                                               else proc.stderr[-6000:]))
    glued = {}
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            book = o.get("metadata", {}).get("scrapbook")
            if book:
                data = o.get("data", {})
                text = next((v for k, v in data.items() if k.endswith("text/plain")), None)
                glued[book["name"]] = text
    return glued


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from recnotes import assets
    from recnotes.models.llm.backends import _dequantized_default
    from recnotes.models.text import DEFAULT_ENCODER

    tmp = tmp_path_factory.mktemp("models")
    llm = tmp / "SmolLM2-12-blocks-hf"
    source = _dequantized_default()
    net = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, local_files_only=True)
    net.model.layers = net.model.layers[:12]
    net.config.num_hidden_layers = 12
    net.save_pretrained(llm)
    AutoTokenizer.from_pretrained(source, local_files_only=True).save_pretrained(llm)
    encoder = tmp / "MiniLM-copy"
    SentenceTransformer(str(assets.fetch(DEFAULT_ENCODER, quiet=True)), device="cpu",
                        local_files_only=True).save(str(encoder))
    return llm, encoder


def write_ml1m(folder: Path, users: int = 400) -> tuple[int, int]:
    """ML-100K's first ``users`` users in GroupLens' ML-1M format; returns (users, films) kept."""
    import numpy as np
    import pandas as pd

    from recnotes.data import load_movielens

    data = load_movielens()
    user, item = data.user_ids[data.user], data.item_ids[data.item]
    keep = user <= users
    folder.mkdir(parents=True)
    rows = zip(user[keep], item[keep], data.rating[keep], data.timestamp[keep])
    (folder / "ratings.dat").write_text("".join(f"{u}::{i}::{int(r)}::{t}\n" for u, i, r, t in rows))
    meta = data.item_meta.set_index("item")
    films = np.unique(item[keep])
    lines = []
    for i in films:
        title, year, genres = meta.loc[i, "title"], meta.loc[i, "year"], meta.loc[i, "genres"]
        shown = title if pd.isna(year) else f"{title} ({year})"
        lines.append(f"{i}::{shown}::{'|'.join(genres)}\n")
    (folder / "movies.dat").write_bytes("".join(lines).encode("latin-1", "replace"))
    (folder / "users.dat").write_text("".join(f"{u}::M::25::0::00000\n" for u in np.unique(user[keep])))
    return len(np.unique(user[keep])), len(films)


def test_chapters_6_and_9_follow_another_llm_encoder_and_dataset(folders, tmp_path):
    """One rerun with every parameter a practitioner changes at once: chapter 6 and then 9 (which
    reads 6's results) with another LLM, another sentence encoder and a dataset in the ML-1M format."""
    import torch
    from transformers import AutoModelForCausalLM

    from recnotes.assets import cache_dir
    from recnotes.data import load_movielens

    llm, encoder = folders
    folder = tmp_path / "ml-1m-format-sample"
    n_users, n_films = write_ml1m(folder)
    data = load_movielens("ml-1m", path=folder)
    assert (data.n_users, data.n_items) == (n_users, n_films) and n_users != 943 and n_films != 1682
    results = tmp_path / "results"
    # a cache of its own for the trained models (the assets linked from the usual one), so that
    # every model the two chapters train is seen below
    cache = tmp_path / "cache"
    cache.mkdir()
    for entry in cache_dir().iterdir():
        if entry.name != "experiments":
            (cache / entry.name).symlink_to(entry.resolve())
    env = {"RECNOTES_CACHE": str(cache)}
    params = dict(dataset=folder, llm_model=llm, encoder_model=encoder)
    glued = run_chapter("06_llm", tmp_path, results, env=env, **params)
    # the facts the chapter glues are the other model's, the other encoder's and the folder's
    net = AutoModelForCausalLM.from_pretrained(llm, dtype=torch.float32, local_files_only=True)
    assert llm.name in glued["llm_origin"] and "GGUF" not in glued["llm_origin"]
    assert int(glued["llm_blocks"]) == net.config.num_hidden_layers == 12
    assert float(glued["llm_params_m"]) == pytest.approx(sum(p.numel() for p in net.parameters()) / 1e6, rel=1e-6)
    assert glued["encoder_name"].strip("'\"") == encoder.name
    assert int(glued["encoder_dims"]) == 384
    assert int(glued["n_items"].replace(",", "")) == n_films
    run_chapter("09_evaluation", tmp_path, results, env=env, **params)
    for chapter in ("06_llm", "09_evaluation"):
        record = json.loads((results / f"{chapter}.json").read_text())
        assert record["dataset"] == str(folder) and record["profile"] == "smoke"
    # each neural model was trained once per seed, under the folder's name (never the default's)
    trained = [json.loads(p.read_text()) for p in (cache / "experiments").glob("*/run.json")]
    assert {t["config"]["dataset"] for t in trained} == {str(folder)}
    # (a GPTRec started from the text encoder's or the LLM's item vectors is another model of the same class)
    runs = Counter((t["model"], t["config"].get("item_init"), t["config"]["seed"])
                   for t in trained if "model" in t)  # LoRA runs have none
    assert {m for m, *_ in runs} >= {"GPTRec", "LSTM"} and max(runs.values()) == 1, runs
