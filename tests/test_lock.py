"""Pinned versions: the lock holds an exact version of every package the book names, `make`
installs with it, every results file records the versions that produced it, and the committed
results were produced with the locked ones."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from recnotes.report.environment import PACKAGES, package_versions

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "constraints.txt"


def pins() -> dict[str, str]:
    out = {}
    for line in LOCK.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"{line!r} in {LOCK.name} is not an exact pin"
            out[re.sub(r"[-_.]+", "-", name).lower()] = version
    return out


def torch_pin() -> str:
    return re.search(r"^TORCH_SPEC \?= torch==(\S+)$", (ROOT / "Makefile").read_text(), re.M).group(1)


def test_the_lock_pins_every_package_the_book_names():
    pinned = pins()
    for name, _ in PACKAGES:
        if name != "torch":  # the CPU build is pinned by the Makefile
            assert name in pinned, f"{name} has no exact version in {LOCK.name}"
    assert "torch" not in pinned and "recnotes" not in pinned


def test_make_installs_with_the_lock():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^LOCK \?= constraints\.txt$", makefile, re.M)
    install = next(line for line in makefile.splitlines() if '-e ".[book,test,llm]"' in line)
    assert "$(LOCK_FLAG)" in install and "LOCK_FLAG := $(if $(LOCK),-c $(LOCK),)" in makefile


def test_a_results_file_records_the_versions_that_wrote_it(tmp_path):
    from recnotes.report.results import record, write_results

    path = write_results("x", [record("P1", "m", "NDCG", 0.1, k=10)], dataset="d", profile="ci", path=tmp_path / "x.json")
    assert json.loads(path.read_text())["versions"] == package_versions()


@pytest.mark.parametrize("path", sorted((ROOT / "book" / "results").glob("*.json")), ids=lambda p: p.stem)
def test_the_published_results_were_produced_with_the_locked_versions(path):
    recorded = json.loads(path.read_text()).get("versions")
    assert recorded, f"{path.name} records no versions: execute its chapter again"
    pinned = {**pins(), "torch": torch_pin()}
    for name, version in recorded.items():
        want = pinned.get(name)
        if want is not None and version != "not installed":
            assert version.split("+")[0] == want.split("+")[0], f"{path.name}: {name} {version}, locked {want}"
