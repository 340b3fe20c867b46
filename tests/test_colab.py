"""Colab, simulated: a chapter that reads other chapters' results runs when opened alone.

* A fresh virtual environment stands in for Colab's Python: PyTorch and Jupyter's
  kernel, no recnotes.  It is built once per set of requirements under
  ``~/.cache/recnotes-tests`` (``$RECNOTES_TEST_CACHE``) and reused; recnotes is
  uninstalled from it before each run.
* A bare repository holding this checkout's HEAD stands in for GitHub: the install
  cell clones it (``$RECNOTES_REPO_URL`` points the cell at its ``file://`` URL).
* A stub ``google.colab`` module, imported when the kernel starts as on Colab, makes
  the install cell take its Colab branch: shallow clone, ``pip install`` of the
  clone, ``os.chdir`` into the clone's ``book/``.
* Chapter 11, which reads the results of chapters 5 to 10, is prepared from its
  source as ``scripts/execute.py`` does and executed by papermill alone in an empty
  folder, in the ci profile, reading the committed (published) results of the
  other chapters from the clone.  The data and models come from the
  asset cache (``$RECNOTES_CACHE`` passes through), so nothing else is downloaded
  but the Python packages that Colab would have.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = "11_faq"
TORCH_SPEC = os.environ.get("TORCH_SPEC", "torch==2.13.0")
#: What Colab has before any cell runs (that recnotes needs): PyTorch and the kernel.
COLAB_BASE = [TORCH_SPEC, "ipykernel"]

spec = importlib.util.spec_from_file_location("execute", ROOT / "scripts" / "execute.py")
execute = importlib.util.module_from_spec(spec)
spec.loader.exec_module(execute)


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def colab_venv() -> Path:
    """A fresh venv with Colab's base packages, cached by requirements and Python version."""
    key = hashlib.sha256("\n".join([*COLAB_BASE, sys.version, (ROOT / "pyproject.toml").read_text()])
                         .encode()).hexdigest()[:12]
    cache = Path(os.environ.get("RECNOTES_TEST_CACHE", Path.home() / ".cache" / "recnotes-tests"))
    venv = cache / f"colab-venv-{key}"
    python = venv / "bin" / "python"
    if not (venv / ".complete").is_file():
        shutil.rmtree(venv, ignore_errors=True)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *COLAB_BASE],
                       check=True)
        (venv / ".complete").touch()
    # Each run starts without recnotes, as on Colab (its dependencies may stay).
    subprocess.run([str(python), "-m", "pip", "uninstall", "-y", "-q", "recnotes"], capture_output=True)
    return venv


@pytest.mark.slow
def test_chapter_that_reads_other_chapters_results_runs_alone_on_colab(tmp_path):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout")
    timings = {}
    start = time.perf_counter()
    venv = colab_venv()
    timings["venv"] = time.perf_counter() - start

    branch = execute.repository()[1]
    origin = tmp_path / "origin.git"  # stands in for the repository URL of _config.yml
    git("init", "-q", "--bare", str(origin))
    git("push", "-q", str(origin), f"HEAD:refs/heads/{branch}")
    profile = "ci"  # the quick profile; the other chapters' results are the published ones

    stub = tmp_path / "colab-stub" / "google" / "colab"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text('"""Stands in for Colab\'s google.colab module."""\n')
    kernels = tmp_path / "jupyter" / "kernels" / "colab"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(venv / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}",
                 "--IPKernelApp.exec_lines=import google.colab"],
        "display_name": "Colab (simulated)", "language": "python",
        "env": {"PYTHONPATH": str(stub.parent.parent)},
    }))

    work = tmp_path / "content"  # Colab's working folder: empty, no checkout, no results
    work.mkdir()
    notebook = work / f"{CHAPTER}.ipynb"
    # the install cell as a configured repository makes it; RECNOTES_REPO_URL points it at the bare one
    execute.prepare(ROOT / "notebooks" / f"{CHAPTER}.md", notebook, url="https://github.com/someone/recnotes-fork")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "RECNOTES_RESULTS", "VIRTUAL_ENV", "JUPYTER_PATH")}
    env.update(JUPYTER_PATH=str(tmp_path / "jupyter"), RECNOTES_REPO_URL=origin.as_uri(),
               RECNOTES_PROFILE=profile, RECNOTES_PROGRESS="0", TQDM_DISABLE="1")
    out = tmp_path / f"{CHAPTER}.out.ipynb"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "papermill", str(notebook), str(out), "-k", "colab",
                           "--cwd", str(work), "-p", "profile", profile, "--no-progress-bar"],
                          capture_output=True, text=True, env=env, timeout=1800)
    timings["chapter"] = time.perf_counter() - t0
    print(f"\ncolab simulation of {CHAPTER} ({profile}): venv {timings['venv']:.0f} s, "
          f"install + chapter {timings['chapter']:.0f} s")
    executed = nbformat.read(out, as_version=4) if out.is_file() else None
    errors = [o for c in (executed.cells if executed else []) if c.cell_type == "code"
              for o in c.get("outputs", []) if o.output_type == "error"]
    assert proc.returncode == 0 and not errors, (
        f"{CHAPTER} stopped on simulated Colab:\n"
        + ("\n".join(errors[0].get("traceback", [])) if errors else proc.stderr[-6000:]))

    clone = work / "recnotes"
    assert (clone / "book" / "results" / f"{CHAPTER}.json").is_file()  # it ran in the clone's book/
    assert git("rev-parse", "HEAD", cwd=clone) == git("rev-parse", "HEAD")
    assert git("rev-parse", "--is-shallow-repository", cwd=clone) == "true"
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import recnotes; print(recnotes.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path,
                           env={k: v for k, v in env.items() if k != "PYTHONPATH"}).stdout
    assert "site-packages" in where, f"recnotes was not installed into the venv from the clone: {where!r}"
