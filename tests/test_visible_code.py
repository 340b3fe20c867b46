"""Visible code reads on its own: no cell a reader sees uses a name that only a hidden cell
defines (a reader could not tell where it comes from)."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "notebooks").glob("*.md"))
HIDDEN = {"remove-cell", "remove-input"}


def defined(tree: ast.AST) -> set[str]:
    """Names a cell binds: assignments, loop and with targets, imports, functions, classes."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            out.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            out |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.arg):
            out.add(node.arg)
    return out


def used(tree: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def hidden_names_in_visible_cells(source: Path) -> list[tuple[int, set[str]]]:
    nb = jupytext.read(source)
    only_hidden: set[str] = set()
    shown: set[str] = set(dir(builtins)) | {"display", "get_ipython"}
    problems = []
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        text = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        tree = ast.parse(text)
        tags = set(cell.metadata.get("tags", []))
        if tags & HIDDEN:
            only_hidden |= defined(tree) - shown
            continue
        bad = (used(tree) - defined(tree)) & only_hidden
        if bad:
            problems.append((i, bad))
        shown |= defined(tree)
        only_hidden -= defined(tree)
    return problems


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_visible_cells_use_no_name_that_only_a_hidden_cell_defines(src):
    problems = hidden_names_in_visible_cells(src)
    assert not problems, "; ".join(f"code cell {i} uses {sorted(names)}" for i, names in problems)


def test_the_check_sees_a_hidden_name():
    import tempfile

    text = ("---\njupytext:\n  text_representation:\n    extension: .md\n    format_name: myst\n---\n\n"
            "```{code-cell} ipython3\n:tags: [remove-cell]\n\nsecret = 1\n```\n\n"
            "```{code-cell} ipython3\nprint(secret)\n```\n")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.md"
        path.write_text(text)
        assert hidden_names_in_visible_cells(path) == [(1, {"secret"})]


