"""The book is not stale: executed notebooks match their sources and carry results."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

from recnotes.report.results import RECORD_KEYS

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "notebooks").glob("*.md"))
INJECTED = {"recnotes-injected", "injected-parameters"}
spec = importlib.util.spec_from_file_location("execute", ROOT / "scripts" / "execute.py")
execute = importlib.util.module_from_spec(spec)
spec.loader.exec_module(execute)


def code_cells(nb) -> list[str]:
    return [c.source.strip() for c in nb.cells
            if c.cell_type == "code" and not INJECTED & set(c.metadata.get("tags", []))]


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return files


def test_there_are_chapters():
    assert SOURCES, "no chapter sources in notebooks/"


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_executed_copy_has_the_same_code(src):
    executed = ROOT / "book" / f"{src.stem}.ipynb"
    assert executed.is_file(), f"{src.name} was never executed: run `make execute CHAPTERS={src.stem}`"
    want = code_cells(jupytext.read(src))
    got = code_cells(nbformat.read(executed, as_version=4))
    assert got == want, (f"book/{executed.name} is stale: its code differs from notebooks/{src.name}; "
                         f"run `make execute CHAPTERS={src.stem}`")


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_executed_copy_ran_cleanly_and_is_in_the_toc(src):
    nb = nbformat.read(ROOT / "book" / f"{src.stem}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), "not every cell was executed"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, errors[0].get("ename")
    assert f"book/{src.stem}" in toc_files()
    # Colab: a badge and a first code cell that installs only on Colab, where a repository is
    # configured (none points nowhere)
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    if url:
        slug = url.split("github.com/", 1)[1]
        assert any("colab-badge.svg" in c.source and slug in c.source for c in nb.cells[:3])
        assert "google.colab" in code[0].source and url in code[0].source
    else:
        assert not any("colab-badge.svg" in c.source or "google.colab" in c.source for c in nb.cells)
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert params and "profile" in params[0].source and "seed" in params[0].source


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_executed_copy_has_the_current_colab_cells_and_hides_its_parameters(src):
    nb = nbformat.read(ROOT / "book" / f"{src.stem}.ipynb", as_version=4)
    injected = [(c.cell_type, c.source) for c in nb.cells if execute.INJECTED_TAG in c.metadata.get("tags", [])]
    assert injected == [(c.cell_type, c.source) for c in execute.colab_cells(src.stem)], (
        f"book/{src.stem}.ipynb has other Colab cells than scripts/execute.py makes; "
        f"run `python scripts/execute.py --prose-only {src.stem}` (or execute it)")
    params = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert all("remove-cell" in c.metadata["tags"] for c in params), "the injected parameters show on the page"


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_results_json_follows_the_format(src):
    path = ROOT / "book" / "results" / f"{src.stem}.json"
    assert path.is_file(), f"chapter {src.stem} wrote no book/results/{src.stem}.json"
    res = json.loads(path.read_text())
    assert {"chapter", "dataset", "profile", "device", "recnotes_version", "records", "ranks"} <= set(res)
    assert res["chapter"] == src.stem and res["records"]
    for rec in res["records"]:
        assert tuple(rec) == RECORD_KEYS
        assert isinstance(rec["value"], (int, float))
    for protocol, models in res["ranks"].items():
        for model, ranks in models.items():
            assert all(isinstance(r, int) and r >= 0 for r in ranks), (protocol, model)


def test_every_toc_page_exists():
    for f in toc_files():
        assert any((ROOT / f"{f}{ext}").is_file() for ext in (".md", ".ipynb")), f


# ------------------------------------------------------------------ visible code
HIDDEN_TAGS = {"remove-cell", "hide-input", "parameters", "remove-input"}


def visible_code_cells(path):
    """Line counts of a chapter source's code cells that a reader sees (not tagged as hidden)."""
    import jupytext

    nb = jupytext.read(path)
    return [len([line for line in c.source.splitlines() if line.strip()]) for c in nb.cells
            if c.cell_type == "code" and not HIDDEN_TAGS & set(c.metadata.get("tags", []))]


@pytest.mark.parametrize("source", sorted((ROOT / "notebooks").glob("*.md")), ids=lambda p: p.stem)
def test_visible_code_is_short(source):
    """A chapter shows what it teaches: median visible code cell <= 8 lines, none over 25."""
    import statistics

    lengths = visible_code_cells(source)
    if not lengths:
        return
    assert statistics.median(lengths) <= 8, f"{source.stem}: median visible cell {statistics.median(lengths)} lines"
    assert max(lengths) <= 25, f"{source.stem}: a visible cell has {max(lengths)} lines"
