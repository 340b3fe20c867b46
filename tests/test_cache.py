"""The experiment cache and the training checkpoints fail clearly: an entry or checkpoint cut
short, or not matching its checksum, is named, moved aside and trained again; writes are atomic."""

from __future__ import annotations

import json

import torch

from recnotes.experiments import GPTRecConfig, run
from recnotes.models import GPTRec
from recnotes.safeio import write_atomic
from recnotes.models.training import TrainConfig, train

from test_train import cycle_split

torch.set_num_threads(1)

CFG = dict(dim=16, n_layers=1, n_heads=2, max_len=12, batch_size=16, profile="smoke")


def _fresh(tmp_path, monkeypatch):
    monkeypatch.setenv("RECNOTES_CACHE", str(tmp_path))
    split = cycle_split()
    first = run(GPTRecConfig(**CFG), split, progress=False)
    return split, first


def _assert_retrained(split, first, capsys):
    again = run(GPTRecConfig(**CFG), split, progress=False)
    err = capsys.readouterr().err
    assert not again.cached
    assert str(first.path) in err and "moved it to" in err and err.count("\n") == 1
    assert list(first.path.parent.glob(f"{first.path.name}.broken-*"))
    hist = split.histories("test")
    assert torch.equal(again.model.score(hist), first.model.score(hist))  # same seed, same model
    assert run(GPTRecConfig(**CFG), split, progress=False).cached  # and the new entry loads


def test_truncated_weights_are_moved_aside_and_retrained(tmp_path, monkeypatch, capsys):
    split, first = _fresh(tmp_path, monkeypatch)
    weights = first.path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    _assert_retrained(split, first, capsys)


def test_weights_that_do_not_match_the_checksum_are_retrained(tmp_path, monkeypatch, capsys):
    split, first = _fresh(tmp_path, monkeypatch)
    weights = first.path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF  # same size, readable header, other numbers
    weights.write_bytes(bytes(data))
    _assert_retrained(split, first, capsys)


def test_unreadable_run_json_is_retrained(tmp_path, monkeypatch, capsys):
    split, first = _fresh(tmp_path, monkeypatch)
    (first.path / "run.json").write_text('{"model": "GPTRec", "hist')
    _assert_retrained(split, first, capsys)


def test_an_entry_without_run_json_is_not_loaded(tmp_path, monkeypatch, capsys):
    split, first = _fresh(tmp_path, monkeypatch)
    (first.path / "run.json").unlink()  # killed between the two writes: trained again, silently
    again = run(GPTRecConfig(**CFG), split, progress=False)
    assert not again.cached and capsys.readouterr().err == ""


def test_a_broken_checkpoint_restarts_training(tmp_path, capsys):
    split = cycle_split()
    cfg = TrainConfig(max_epochs=2, batch_size=16)
    model = GPTRec(dim=16, n_layers=1, n_heads=2, max_len=12)
    torch.manual_seed(0)
    model.build(split.n_items)
    train(model, split, cfg, checkpoint_dir=tmp_path / "ckpt", progress=False)
    meta = json.loads((tmp_path / "ckpt" / "last.json").read_text())
    assert meta["epoch"] == 2 and len(meta["sha256"]) == 64
    (tmp_path / "ckpt" / "last.safetensors").write_bytes(b"\0" * 10)
    again = GPTRec(dim=16, n_layers=1, n_heads=2, max_len=12)
    torch.manual_seed(0)
    again.build(split.n_items)
    history = train(again, split, cfg, checkpoint_dir=tmp_path / "ckpt", progress=False)
    assert [h["epoch"] for h in history] == [1, 2]  # from scratch, not resumed
    assert "training checkpoint" in capsys.readouterr().err


def test_write_atomic_leaves_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "x.json"
    target.write_text("old")

    def failing(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    try:
        write_atomic(target, failing)
    except OSError:
        pass
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]  # no temporary file left behind


def _write_many(path: str, label: str, n: int) -> None:
    from pathlib import Path

    for i in range(n):
        write_atomic(Path(path), lambda tmp: tmp.write_text(f"{label} {i} " + label * 20000))


def test_two_processes_writing_one_key_leave_a_whole_file(tmp_path):
    """Two writers of one entry at once (two lanes of make book): a reader sees one writer's whole
    text, never a mix or a file cut short, and no temporary file is left behind."""
    import multiprocessing

    path = tmp_path / "entry.json"
    ctx = multiprocessing.get_context("spawn")
    writers = [ctx.Process(target=_write_many, args=(str(path), label, 150)) for label in "ab"]
    for w in writers:
        w.start()
    seen = 0
    while any(w.is_alive() for w in writers):
        if path.is_file():
            text = path.read_text()
            label = text[0]
            assert label in "ab" and text.endswith(label * 20000) and len(text.split(" ")[2]) == 20000
            seen += 1
    for w in writers:
        w.join()
        assert w.exitcode == 0
    assert seen > 0
    assert [p.name for p in tmp_path.iterdir()] == ["entry.json"]
