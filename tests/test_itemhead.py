"""The item-head LLM against independent references: its windows make every training film but a
user's first a target once, its scores are a plain forward pass of the pinned model (one user at
a time, no padding), no state sees a later film, the item matrix starts from the LLM's own view of
each film read alone (centred on the films' mean when asked), training moves only the adapters and the head and lowers the loss, and
what it saves loads back to the same scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from recnotes.models.llm import item_titles
from recnotes.models.llm.itemhead import ItemHeadLLM, ItemHeadSettings, item_windows
from recnotes.models.llm.prompts import LIST_HEADER, continuation_text

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def vectors(backend, split):
    """Stand-in item vectors (the properties below hold whatever the head starts from; the LLM's
    own vectors take a pass over every title, tested on a small catalogue below)."""
    return np.random.default_rng(0).normal(size=(split.n_items + 1, backend.model.config.hidden_size))


@pytest.fixture(scope="module")
def model(split, backend, vectors):
    head = ItemHeadLLM(backend, item_titles(split.data), ItemHeadSettings(layers=2, window=6, batch_size=2), vectors)
    with torch.no_grad():  # adapters that are not zero, so that the tests see them act
        for n, p in head.body.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.linspace(-0.02, 0.02, p.numel()).reshape(p.shape))
    return head


def test_windows_make_every_training_film_but_the_first_a_target_once(split):
    windows = item_windows(split, window=5, seed=0)
    assert all(2 <= len(w) <= 5 for w in windows)
    targets = np.sort(np.concatenate([w[1:] for w in windows]))
    expected = np.sort(np.concatenate([np.asarray(s[1:]) for s in split.train if len(s) > 1]))
    assert np.array_equal(targets, expected)


def _by_hand(model, films):
    """The final hidden state at the end of the last film's line: the pinned model's own forward
    pass (``output_hidden_states``) on the unpadded prompt of one user."""
    ids = list(model.backend.prompt_ids(LIST_HEADER))
    for f in films:
        ids += model.backend.tokenizer(continuation_text(model.titles[int(f)], "list"),
                                       add_special_tokens=False)["input_ids"]
    out = model.body(input_ids=torch.tensor([ids]), output_hidden_states=True)
    return out.hidden_states[-1][0, -1]


@torch.no_grad()
def test_scores_are_a_plain_forward_pass_of_one_user(model, split):
    histories = [np.asarray(split.train[u]) for u in (0, 5, 9)]  # different lengths: a padded batch
    scores = model.score(histories)
    for row, hist in enumerate(histories):
        h = _by_hand(model, hist[-(model.settings.window - 1):])
        want = F.normalize(h - model.center, dim=0) * model.settings.scale @ model.items.T + model.bias
        torch.testing.assert_close(scores[row, 1:], want[1:], rtol=1e-4, atol=1e-4)
    assert scores[:, 0].eq(-np.inf).all()


@torch.no_grad()
def test_no_state_sees_a_later_film(model):
    a = model.states([[1, 50, 100, 181, 7]])[0]
    b = model.states([[1, 50, 100, 3, 400]])[0]
    torch.testing.assert_close(a[:3], b[:3], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(a[3], b[3], atol=1e-3)


@torch.no_grad()
def test_the_item_matrix_starts_from_each_films_line_read_alone(split, backend):
    titles = item_titles(split.data)
    catalogue = [titles[0], titles[1], titles[50], titles[1682]]  # three films and the padding row
    fresh = ItemHeadLLM(backend, catalogue, ItemHeadSettings(layers=1, center=True))  # computes its own vectors
    states = []
    for title in catalogue[1:]:
        ids = backend.prompt_ids(continuation_text(title, "list"))
        states.append(backend.model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[-1][0, -1])
    mean = torch.stack(states).mean(dim=0)  # the films' mean vector: the states' centre
    torch.testing.assert_close(fresh.center.detach(), mean, rtol=1e-4, atol=1e-4)
    for row, h in enumerate(states, start=1):
        torch.testing.assert_close(fresh.items[row], F.normalize(h - mean, dim=0), rtol=1e-4, atol=1e-4)
    plain = ItemHeadLLM(backend, catalogue, ItemHeadSettings(layers=1))  # the default: not centred
    assert not plain.center.any()
    for row, h in enumerate(states, start=1):
        torch.testing.assert_close(plain.items[row], F.normalize(h, dim=0), rtol=1e-4, atol=1e-5)


def test_training_moves_only_the_adapters_and_the_head_and_lowers_the_loss(split, backend, vectors):
    seen = item_windows(split, 10, 0)[:48]  # the windows the 12 steps train on
    settings = ItemHeadSettings(layers=1, window=10, batch_size=4, targets=sum(len(w) - 1 for w in seen),
                                warmup_steps=2)
    head = ItemHeadLLM(backend, item_titles(split.data), settings, vectors)
    with torch.no_grad():
        before = float(head.loss(seen))
    frozen = {n: p.detach().clone() for n, p in head.body.named_parameters() if not p.requires_grad}
    items = head.items.detach().clone()
    head.fit(split, progress=False)
    assert len(head.history) == 12 and head.targets_seen == sum(len(w) - 1 for w in seen)
    assert all(torch.equal(p, frozen[n]) for n, p in head.body.named_parameters() if not p.requires_grad)
    assert not torch.equal(head.items, items)
    with torch.no_grad():
        after = float(head.loss(seen))
    assert after < before - 0.1, (before, after)


def test_saved_model_loads_back_to_the_same_scores(model, split, backend, vectors, tmp_path):
    import json

    model.save(tmp_path)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["r"] == model.settings.rank
    assert config["base_model_name_or_path"] == backend.name  # the pinned model's name, not a local path
    again = ItemHeadLLM(backend, model.titles, model.settings, np.zeros_like(vectors)).load(tmp_path)
    histories = [np.asarray(split.train[u]) for u in (3, 4)]
    torch.testing.assert_close(again.score(histories), model.score(histories))


def test_an_interrupted_run_resumes_to_the_same_model(split, backend, vectors, tmp_path):
    """Stopped after its first step and resumed from the checkpoint, a run ends where the same run
    without a stop ends: the same losses, the same kept models, the same scores."""
    settings = ItemHeadSettings(layers=1, window=6, batch_size=2, targets=40, warmup_steps=2)
    titles = item_titles(split.data)
    whole = ItemHeadLLM(backend, titles, settings, vectors).fit(split, progress=False, checkpoint_dir=tmp_path / "a",
                                                               keep=(12,))
    first = ItemHeadLLM(backend, titles, settings, vectors)
    first.fit(split, progress=False, checkpoint_dir=tmp_path / "b", keep=(12,), checkpoint_every=1, max_seconds=0)
    assert len(first.history) == 1
    resumed = ItemHeadLLM(backend, titles, settings, vectors).fit(split, progress=False,
                                                                 checkpoint_dir=tmp_path / "b", keep=(12,))
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in whole.history]
    assert resumed.targets_seen == whole.targets_seen >= 40
    kept = whole.kept(tmp_path / "a")
    assert list(kept) == list(resumed.kept(tmp_path / "b")) and list(kept)[-1] == whole.targets_seen
    assert 12 <= list(kept)[0] < 12 + 2 * 5  # the first step at or past 12 targets (2 windows of <= 5)
    histories = [np.asarray(split.train[u]) for u in (5, 6)]
    torch.testing.assert_close(resumed.score(histories), whole.score(histories))
    again = ItemHeadLLM.from_saved(backend, titles, kept[whole.targets_seen])
    torch.testing.assert_close(again.score(histories), whole.score(histories))


def test_a_float16_head_loads_back_alike_and_to_the_same_scores_each_time(model, split, backend, tmp_path):
    """The committed copy keeps the item head in float16 (half the bytes): scores move by at most
    the head's rounding, and every load gives the same scores."""
    model.save(tmp_path, torch.float16)
    histories = [np.asarray(split.train[u]) for u in (7, 8)]
    one = ItemHeadLLM.from_saved(backend, model.titles, tmp_path).score(histories)
    two = ItemHeadLLM.from_saved(backend, model.titles, tmp_path).score(histories)
    assert torch.equal(one, two)
    # each coordinate rounded to 11 bits moves <q, E[i]> (|q| = scale) by at most scale * 2^-11 * |E[i]|
    norms = model.items.detach().norm(dim=1).max()
    bound = float(model.settings.scale * 2.0 ** -11 * norms + 2.0 ** -11 * model.bias.detach().abs().max()) * 1.01
    assert float((one - model.score(histories))[:, 1:].abs().max()) < bound
