"""The LLM's item vectors: each film's line read alone, the state at its last token, against a
plain forward pass of that line (no batch, no padding), and GPTRec started from them."""

from __future__ import annotations

import numpy as np
import torch

from recnotes.models.llm import HFBackend, item_titles
from recnotes.models.llm.items import llm_item_vectors
from recnotes.data import load_movielens

torch.set_num_threads(1)


def test_item_vectors_equal_each_line_read_alone():
    backend = HFBackend.from_pretrained(device="cpu", dtype=torch.float32)
    titles = item_titles(load_movielens())[:40]  # row 0 (padding) and 39 films of different lengths
    got = llm_item_vectors(backend, titles, batch=16)
    assert got.shape == (40, backend.model.config.hidden_size) and not got[0].any()
    base = backend.model.get_decoder()
    for i in (1, 7, 17, 39):  # in three different batches
        ids = torch.tensor([backend.prompt_ids(f"{titles[i]}\n")])
        with torch.no_grad():
            want = base(input_ids=ids).last_hidden_state[0, -1].numpy()
        np.testing.assert_allclose(got[i], want, atol=2e-4)
    # films differ from one another (not one constant vector)
    assert np.linalg.norm(got[1] - got[2]) > 1e-2


def test_gptrec_llm_init_starts_from_the_projected_llm_vectors(monkeypatch):
    """GPTRecConfig(item_init="llm") asks the pinned LLM (float32) for every film's vector and
    starts GPTRec's item embeddings from their projection (the vectors stand in here: their
    computation is the test above)."""
    from recnotes import experiments
    from recnotes.models.llm import items
    from recnotes.models.text import projected_item_embeddings

    seen = {}
    rng = np.random.default_rng(0)

    def fake(backend, titles, batch=64):
        seen["backend"], seen["titles"] = backend, list(titles)
        out = rng.normal(size=(len(titles), 576)).astype(np.float32)
        out[0] = 0
        seen["vectors"] = out
        return out

    monkeypatch.setattr(items, "llm_item_vectors", fake)
    split = experiments.load_split("ml-100k")
    model = experiments.GPTRecConfig(profile="smoke", item_init="llm").build()
    model.build(split.n_items)
    assert seen["titles"] == item_titles(split.data)
    assert next(seen["backend"].model.parameters()).dtype == torch.float32
    want = projected_item_embeddings(seen["vectors"], model.dim)
    torch.testing.assert_close(model.embedding.item.weight.detach(), want)


def test_a_cached_gptrec_loads_without_computing_its_start(monkeypatch, tmp_path):
    """The LLM's vectors only start training: loading a cached model (its own weights) must not
    pay a pass of the LLM over every title again."""
    import json

    from safetensors.torch import save_file

    from recnotes import experiments
    from recnotes.models.llm import items
    from recnotes.safeio import file_sha256

    calls = []

    def fake(backend, titles, batch=64):
        calls.append(len(titles))
        return np.random.default_rng(len(calls)).normal(size=(len(titles), 576)).astype(np.float32)

    monkeypatch.setattr(items, "llm_item_vectors", fake)
    from recnotes.models.llm import backends

    monkeypatch.setattr(backends.HFBackend, "from_pretrained", classmethod(lambda cls, **kw: None))
    split = experiments.load_split("ml-100k")
    config = experiments.GPTRecConfig(profile="smoke", item_init="llm")
    trained = config.build()
    trained.build(split.n_items)
    assert calls == [split.n_items + 1]
    save_file({k: v.contiguous() for k, v in trained.state_dict().items()}, str(tmp_path / "model.safetensors"))
    (tmp_path / "run.json").write_text(json.dumps({"model_sha256": file_sha256(tmp_path / "model.safetensors"),
                                                   "history": [], "train_seconds": 1.0}))
    loaded = experiments._load_entry(config, config.build(), split, tmp_path, "cpu")
    assert calls == [split.n_items + 1]  # no second pass
    for (name, a), b in zip(trained.state_dict().items(), loaded.model.state_dict().values()):
        assert torch.equal(a, b), name
