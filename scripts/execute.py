"""Execute chapter sources into the book: notebooks/NN_x.md -> book/NN_x.ipynb.

Each MyST markdown source is converted with jupytext, given an "Open in
Colab" badge and a Colab-only install cell (both built from the repository
URL in ``_config.yml``, the one place it lives), and executed by papermill
with the parameters ``profile`` and ``seed``.  The executed notebook, with
its outputs, is written to ``book/``.

    python scripts/execute.py [--profile full|ci|smoke] [--seed 0] [CHAPTER ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import jupytext
import nbformat
import papermill
import yaml

ROOT = Path(__file__).resolve().parents[1]
INJECTED_TAG = "recnotes-injected"


def repository() -> tuple[str, str]:
    """(url, branch) from ``_config.yml``."""
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = cfg.get("repository", {})
    return repo["url"].rstrip("/"), repo.get("branch", "main")


def colab_cells(name: str) -> list[nbformat.NotebookNode]:
    """The badge (markdown) and the install cell that runs only on Colab."""
    url, branch = repository()
    slug = url.split("github.com/", 1)[1]
    link = f"https://colab.research.google.com/github/{slug}/blob/{branch}/book/{name}.ipynb"
    badge = nbformat.v4.new_markdown_cell(
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({link})")
    install = nbformat.v4.new_code_cell(
        "# On Colab, install recnotes from the repository; elsewhere this does nothing.\n"
        "import sys\n"
        "if 'google.colab' in sys.modules:\n"
        f"    %pip install -q 'recnotes[llm] @ git+{url}@{branch}'")
    badge.metadata["tags"] = [INJECTED_TAG]
    install.metadata["tags"] = [INJECTED_TAG, "hide-input"]
    return [badge, install]


def prepare(src: Path, dest: Path) -> None:
    """MyST markdown -> ipynb with the Colab cells after the title."""
    nb = jupytext.read(src)
    first_md = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"), -1)
    nb.cells[first_md + 1:first_md + 1] = colab_cells(src.stem)
    nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3",
                                          "language": "python"})
    nb.metadata.pop("jupytext", None)
    nbformat.write(nb, dest)


def execute(name: str, profile: str, seed: int) -> float:
    src = ROOT / "notebooks" / f"{name}.md"
    out = ROOT / "book" / f"{name}.ipynb"
    with tempfile.TemporaryDirectory(prefix="recnotes-exec-") as tmp:
        prepared = Path(tmp) / f"{name}.ipynb"
        prepare(src, prepared)
        start = time.perf_counter()
        papermill.execute_notebook(
            str(prepared), str(out), parameters={"profile": profile, "seed": seed},
            kernel_name="python3", cwd=str(ROOT / "book"), progress_bar=False,
            request_save_on_cell_execute=False)
    # Keep the committed notebooks small and stable: drop papermill's timing metadata.
    nb = nbformat.read(out, as_version=4)
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:03d}"  # stable ids: re-executing does not churn the diff
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    nb.metadata.get("papermill", {}).pop("start_time", None)
    nb.metadata.get("papermill", {}).pop("end_time", None)
    nb.metadata.get("papermill", {}).pop("duration", None)
    nb.metadata.get("papermill", {}).pop("input_path", None)
    nb.metadata.get("papermill", {}).pop("output_path", None)
    nbformat.write(nb, out)
    return time.perf_counter() - start


def sync_prose(name: str) -> None:
    """Copy the source's markdown into the executed notebook without re-running it.

    Allowed only when the code cells are unchanged (outputs stay valid); an edit of
    prose alone then does not cost a re-execution.
    """
    out = ROOT / "book" / f"{name}.ipynb"
    with tempfile.TemporaryDirectory(prefix="recnotes-sync-") as tmp:
        prepared = Path(tmp) / f"{name}.ipynb"
        prepare(ROOT / "notebooks" / f"{name}.md", prepared)
        src = nbformat.read(prepared, as_version=4)
    nb = nbformat.read(out, as_version=4)
    executed = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    if [(c.cell_type, c.source) for c in executed if c.cell_type == "code"] != \
            [(c.cell_type, c.source) for c in src.cells if c.cell_type == "code"] or \
            [c.cell_type for c in executed] != [c.cell_type for c in src.cells]:
        raise SystemExit(f"error: the code of {name} changed; execute it instead of syncing its prose")
    for old, new in zip(executed, src.cells):
        if old.cell_type == "markdown":
            old.source = new.source
    nbformat.write(nb, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("chapters", nargs="*", help="chapter names (default: all in notebooks/)")
    parser.add_argument("--profile", default=os.environ.get("RECNOTES_PROFILE", "full"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prose-only", action="store_true",
                        help="only copy edited markdown into already executed notebooks (code unchanged)")
    args = parser.parse_args(argv)
    # No progress bars in the published outputs (the kernel inherits this).
    os.environ.setdefault("RECNOTES_PROGRESS", "0")
    os.environ.setdefault("TQDM_DISABLE", "1")  # also the bars of third-party loaders
    names = args.chapters or sorted(p.stem for p in (ROOT / "notebooks").glob("*.md"))
    unknown = [n for n in names if not (ROOT / "notebooks" / f"{n}.md").is_file()]
    if unknown:
        print(f"error: no chapter source notebooks/{unknown[0]}.md", file=sys.stderr)
        return 2
    if args.prose_only:
        for name in names:
            sync_prose(name)
            print(f"synced the prose of book/{name}.ipynb")
        return 0
    for name in names:
        print(f"executing {name} (profile={args.profile}, seed={args.seed}) ...", flush=True)
        seconds = execute(name, args.profile, args.seed)
        print(f"  done in {seconds:.1f} s -> book/{name}.ipynb", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
