"""One store for the served models' answers, one lock for the experiment cache: two processes
writing one key leave one whole record, and two processes computing one entry under the lock do
it one after the other (no update lost)."""

from __future__ import annotations

import json
import multiprocessing
import time

from recnotes.safeio import JsonStore, locked

KEY = "ab" + "0" * 62


def _writer(folder: str, tag: str, n: int) -> None:
    store = JsonStore(folder)
    for i in range(n):
        store.put(KEY, {"tag": tag, "i": i, "payload": [tag] * 2000})


def test_two_processes_writing_one_key_leave_one_whole_record(tmp_path):
    ctx = multiprocessing.get_context("fork")
    writers = [ctx.Process(target=_writer, args=(str(tmp_path), tag, 300)) for tag in ("a", "b")]
    for w in writers:
        w.start()
    store, seen = JsonStore(tmp_path), set()
    while any(w.is_alive() for w in writers):  # read while both write: never a record cut short
        record = store.get(KEY)
        if record is not None:
            assert record["payload"] == [record["tag"]] * 2000
            seen.add(record["tag"])
    for w in writers:
        w.join()
        assert w.exitcode == 0
    final = json.loads(store.path(KEY).read_text())
    assert final["tag"] in ("a", "b") and final["i"] == 299 and final["payload"] == [final["tag"]] * 2000
    assert seen  # the reader did see records while they were written
    assert not list(tmp_path.rglob("*.part"))  # no temporary file left behind


def test_a_broken_record_counts_as_missing(tmp_path):
    store = JsonStore(tmp_path)
    store.path(KEY).parent.mkdir(parents=True)
    store.path(KEY).write_text('{"tag": "a", "payl')
    assert store.get(KEY) is None
    store.put(KEY, {"tag": "b"})
    assert store.get(KEY) == {"tag": "b"}


def _increment(folder: str, counter: str) -> None:
    from pathlib import Path

    with locked(Path(folder)):
        path = Path(counter)
        value = int(path.read_text()) if path.is_file() else 0
        time.sleep(0.3)  # a read-modify-write that another process would interleave without the lock
        path.write_text(str(value + 1))


def test_two_processes_under_the_lock_compute_one_after_the_other(tmp_path):
    ctx = multiprocessing.get_context("fork")
    counter = tmp_path / "counter"
    procs = [ctx.Process(target=_increment, args=(str(tmp_path / "entry"), str(counter))) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert counter.read_text() == "3"
