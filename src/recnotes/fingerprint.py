"""The code that produces a cached result, as a fingerprint its cache key holds.

A trained model or an LLM run is cached under a key of its config, its data and the code
that computes it (:func:`code_fingerprint`). That code is found from the source, not
declared by hand: the modules named, and every ``recnotes`` module they import (at the top
or inside a function), transitively. Each module counts by its syntax tree without
docstrings, so a comment, a docstring or a reformatting leaves the key as it is, and any
change to what runs gives a new key: the cached result is then computed again instead of
being published stale.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
from functools import lru_cache
from pathlib import Path

__all__ = ["code_fingerprint", "code_modules"]


@lru_cache(maxsize=None)
def _origin(module: str) -> Path | None:
    """The source file of a module (None for a built-in or compiled one, or none at all)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    return Path(spec.origin) if spec is not None and spec.origin and spec.origin.endswith(".py") else None


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def _imported(module: str, path: Path, tree: ast.AST) -> set[str]:
    """The modules of ``module``'s own top-level package that it imports anywhere in its source."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    top = module.split(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == top}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = ".".join(base[:len(base) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target.split(".")[0] != top:
                continue  # another package's: not followed (nor imported to find out)
            # "from pkg import name": name is a submodule, or something pkg defines
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if _origin(sub) is not None else target)
    return {m for m in found if _origin(m) is not None}


@lru_cache(maxsize=None)
def _module(module: str) -> tuple[str, frozenset[str]]:
    """(digest of the module's syntax tree without docstrings, the package modules it imports)."""
    if module == "__main__" or module.startswith("__main__."):
        # a module run with "python -m" is named __main__ there and by its name elsewhere: the
        # same code would get two fingerprints, and a result computed by one never be found by the other
        raise ValueError("name the module (for example 'recnotes.llm_experiments'), not '__main__'")
    path = _origin(module)
    if path is None:
        raise ValueError(f"{module!r}: no Python source found")
    tree = ast.parse(path.read_text(), filename=str(path))
    imports = _imported(module, path, tree)
    dump = ast.dump(_without_docstrings(tree), annotate_fields=False, include_attributes=False)
    return hashlib.sha256(dump.encode()).hexdigest(), frozenset(imports)


def code_modules(*modules: str) -> list[str]:
    """The modules named and every package module they import, transitively, sorted."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += sorted(_module(name)[1] - seen)
    return sorted(seen)


def code_fingerprint(*modules: str, own: tuple[str, ...] = ()) -> str:
    """sha256 over the syntax trees (docstrings left out) of :func:`code_modules` ``(*modules)``,
    and of the modules ``own`` alone (without what they import: for a module that orchestrates,
    whose imports other than ``modules`` do not decide the result)."""
    h = hashlib.sha256()
    for name in code_modules(*modules):
        h.update(f"{name}:{_module(name)[0]}|".encode())
    for name in sorted(own):
        h.update(f"own {name}:{_module(name)[0]}|".encode())
    return h.hexdigest()[:16]
