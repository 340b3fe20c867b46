"""The environment tables of the tools chapter say what is really installed."""

from __future__ import annotations

import re
import sys
from importlib import metadata

import pytest

from recnotes import assets
from recnotes.report.environment import (NOT_INSTALLED, PACKAGES, assets_table, package_version,
                                         python_version, split_pin, versions_table)


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_versions_match_importlib_metadata():
    table = versions_table()
    assert list(table.index) == [name for name, _ in PACKAGES]
    listed = {_norm(n): n for n in table.index}
    compared = 0
    for dist in metadata.distributions():  # an independent path: walk the installed distributions
        row = listed.get(_norm(dist.metadata["Name"] or ""))
        if row is not None:
            assert table.loc[row, "version"] == dist.version
            compared += 1
    installed = (table["version"] != NOT_INSTALLED).sum()
    assert compared >= installed >= 5  # every installed package was checked


def test_installed_core_packages_have_a_version():
    table = versions_table()
    for core in ("numpy", "pandas", "torch", "pytest"):
        assert table.loc[core, "version"] == metadata.version(core) != NOT_INSTALLED


def test_missing_package_reads_not_installed():
    name = "recnotes-no-such-distribution-x9"
    assert package_version(name) == NOT_INSTALLED
    table = versions_table([(name, "nothing"), ("numpy", "arrays")])
    assert table.loc[name, "version"] == NOT_INSTALLED
    assert table.loc["numpy", "version"] == metadata.version("numpy")
    assert table.loc[name, "used for"] == "nothing"


def test_every_package_has_a_purpose_and_is_listed_once():
    names = [n for n, _ in PACKAGES]
    assert len(names) == len(set(names))
    assert all(purpose.strip() for _, purpose in PACKAGES)


def test_python_version_is_the_running_interpreter():
    assert python_version() == ".".join(str(x) for x in sys.version_info[:3])


def test_split_pin():
    assert split_pin("recbole==1.2.1") == ("recbole", "1.2.1")
    for bad in ("recbole", "recbole>=1.2", "recbole==", "==1.0", "x==1.*"):
        with pytest.raises(ValueError):
            split_pin(bad)


def test_assets_table_matches_the_pins():
    table = assets_table()
    assert list(table.index) == list(assets.ASSETS)
    for name, a in assets.ASSETS.items():
        assert f"{table.loc[name, 'PyPI wheel']}=={table.loc[name, 'version']}" == a.wheel
        assert table.loc[name, "files"] == len(a.files)


def test_machine_note_says_when_a_record_came_from_another_processor():
    from recnotes.device import machine_note

    here = "Intel(R) Xeon(R) Processor, 2 cores, flags: avx2 amx_bf16"
    assert machine_note("Intel(R) Xeon(R) Processor, 2 cores, flags: avx2", here) == ""
    note = machine_note("AMD EPYC, 2 cores, flags: avx2", here)
    assert "another processor" in note and "Intel(R) Xeon(R) Processor" in note and "EPYC" not in note
