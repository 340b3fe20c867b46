"""Execute chapter sources into the book: notebooks/NN_x.md -> book/NN_x.ipynb.

Each MyST markdown source is converted with jupytext, given an "Open in
Colab" badge and a Colab-only install cell (both built from the repository
URL in ``_config.yml``, the one place it lives), and executed by papermill
with the parameters ``profile`` and ``seed``.  The executed notebook, with
its outputs, is written to ``book/``.

With ``--jobs N`` (the Makefile's default is 2, one per core) chapters run in N
parallel lanes, each its own process with ``--threads`` PyTorch threads (default
1, also when sequential, so the book's numbers do not depend on the number of
lanes).  A chapter starts once the chapters whose results it reads are done
(``NEEDS``); the models several chapters load from the experiment cache are
trained first, as tasks of their own (``python -m recnotes.experiments``), so a
free lane trains them while another runs a long chapter.

    python scripts/execute.py [--profile full|ci|smoke] [--seed 0] [--jobs 2] [CHAPTER ...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
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

#: What each chapter waits for in a parallel run: the chapters whose results files
#: it reads, ("train:MODEL:SEED") the trained models it loads from the cache, and
#: ("llm:NAME") the LLM runs of recnotes.llm_tasks it reads from the cache.
#: "SEED" stands for the --seed in force, "SEEDS" for every seed of the profile; "NEURAL" for
#: every neural model of recnotes.experiments.CONFIGS (a model added there is trained for the
#: chapters that compare them all), and "llm:*" for every LLM task (recnotes.llm_tasks: a
#: group of runs computed together, such as "llm:list", is one task).
NEEDS: dict[str, list[str]] = {
    "02_concepts": ["train:GPTRec:SEED"],
    "04_math": ["train:GPTRec:SEED"],
    "05_code": ["train:NEURAL:SEEDS"],
    "06_llm": ["llm:*", "train:GPTRec:SEEDS", "train:GPTRec-text:SEED", "train:GPTRec-llm:SEED"],
    "07_applications": ["train:NEURAL:SEEDS"],
    "09_evaluation": ["06_llm", "train:NEURAL:SEEDS"],
    "10_outlook": ["train:GPTRec:SEED"],
    "11_faq": ["05_code", "06_llm", "07_applications", "09_evaluation", "10_outlook"],
}


def neural_models() -> list[str]:
    """The neural models of recnotes.experiments.CONFIGS (trained once per seed, cached)."""
    from recnotes.experiments import CONFIGS, NeuralConfig

    return [name for name, config in CONFIGS.items() if issubclass(config, NeuralConfig)]


def llm_tasks() -> list[str]:
    """Every LLM lane task: a group of recnotes.llm_tasks, or a task in no group."""
    from recnotes.llm_tasks import GROUPS, TASKS, group_of

    return [f"llm:{g}" for g in GROUPS] + [f"llm:{t}" for t in TASKS if group_of(t) is None]


def llm_needs(task: str, profile: str, seed: int) -> list[str]:
    """What an LLM lane task waits for, read from its configs: the fine-tuning run whose adapters
    it scores, and the GPTRec whose top 20 it re-ranks."""
    from recnotes.llm_tasks import GROUPS, task_config

    name = task.split(":", 1)[1]
    configs = [task_config(n, seed=seed, profile=profile) for n in GROUPS.get(name, (name,))]
    configs = [c for c in configs if c is not None]
    needs = []
    if name != "lora" and any(getattr(c, "lora", None) is not None for c in configs):
        needs.append("llm:lora")
    if any(getattr(c, "candidates", None) == "GPTRec-top20" for c in configs):
        needs.append("train:GPTRec:SEED")
    return needs


#: Which ready task a free lane takes first: the long chains that others wait for. Chapter 6
#: is the longest chapter and 9 and 11 wait for it, so what it needs comes first and it starts
#: as soon as it can; the LSTM's seeds (for 5, 7 and 9) and the other chapters run beside it.
PRIORITY = ["llm:lora", "train:GPTRec", "llm:list", "llm:zero-shot-completion", "llm:zero-shot-chat",
            "llm:size-gemma3-270m", "llm:rerank-gptrec", "llm:rerank-gptrec-valid", "llm:zero-shot-list-10",
            "llm:priors", "train:GPTRec-text", "train:GPTRec-llm", "06_llm", "train:LSTM", "09_evaluation",
            "10_outlook", "03_algorithms"]


def repository() -> tuple[str, str]:
    """(url, branch) from ``_config.yml``; the url is empty while none is configured."""
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = cfg.get("repository") or {}
    return (repo.get("url") or "").rstrip("/"), repo.get("branch") or "main"


#: The badge image, committed beside the chapters (the site serves it; no remote image).
BADGE = "_static/colab-badge.svg"


def colab_cells(name: str, url: str | None = None, branch: str | None = None) -> list[nbformat.NotebookNode]:
    """The badge (markdown) and the install cell that runs only on Colab; none while no
    repository is configured (``url``, ``branch``: default :func:`repository`'s), since a
    badge would point nowhere.

    On Colab the cell clones the repository (``$RECNOTES_REPO_URL`` overrides the
    URL; the tests point it at a local clone), installs recnotes from the clone
    and works in its ``book/`` folder, where ``results/`` holds the results that
    later chapters read.  Run again, it does nothing.
    """
    configured = repository()
    url = (configured[0] if url is None else url).rstrip("/")
    branch = branch or configured[1]
    if not url:
        return []
    slug = url.split("github.com/", 1)[1]
    link = f"https://colab.research.google.com/github/{slug}/blob/{branch}/book/{name}.ipynb"
    badge = nbformat.v4.new_markdown_cell(f"[![Open in Colab]({BADGE})]({link})")
    install = nbformat.v4.new_code_cell(
        "# On Colab: clone the repository (chapters read each other's results in book/results),\n"
        "# install recnotes from the clone and work in its book/ folder. Elsewhere this does nothing.\n"
        "import os, subprocess, sys\n"
        "if 'google.colab' in sys.modules and not os.path.isdir('results'):\n"
        f"    repo = os.environ.get('RECNOTES_REPO_URL', '{url}')\n"
        "    if not os.path.isdir('recnotes'):\n"
        f"        subprocess.run(['git', 'clone', '-q', '--depth', '1', '-b', '{branch}', repo, 'recnotes'], check=True)\n"
        "    %pip install -q './recnotes[llm]'\n"
        "    os.chdir('recnotes/book')")
    badge.metadata["tags"] = [INJECTED_TAG]
    install.metadata["tags"] = [INJECTED_TAG, "hide-input"]
    return [badge, install]


def hide_injected_parameters(nb: nbformat.NotebookNode) -> None:
    """Tag papermill's injected-parameters cell ``remove-cell``: the page does not show it."""
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]


def prepare(src: Path, dest: Path, url: str | None = None) -> None:
    """MyST markdown -> ipynb with the Colab cells after the title (``url``: the repository's,
    default the configured one)."""
    nb = jupytext.read(src)
    first_md = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"), -1)
    nb.cells[first_md + 1:first_md + 1] = colab_cells(src.stem, url)
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
    hide_injected_parameters(nb)
    nbformat.write(nb, out)
    return time.perf_counter() - start


def sync_prose(name: str) -> None:
    """Copy the source's markdown into the executed notebook without re-running it.

    Allowed only when the code cells are unchanged (outputs stay valid); an edit of
    prose alone then does not cost a re-execution.  The Colab cells (the badge, and
    the install cell, which does nothing outside Colab) are refreshed from
    :func:`colab_cells` too, and the injected parameters hidden.
    """
    out = ROOT / "book" / f"{name}.ipynb"
    with tempfile.TemporaryDirectory(prefix="recnotes-sync-") as tmp:
        prepared = Path(tmp) / f"{name}.ipynb"
        prepare(ROOT / "notebooks" / f"{name}.md", prepared)
        src = nbformat.read(prepared, as_version=4)
    nb = nbformat.read(out, as_version=4)
    executed = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]

    def injected(cell) -> bool:
        return INJECTED_TAG in cell.metadata.get("tags", [])

    def code(cells) -> list[str]:
        return [c.source for c in cells if c.cell_type == "code" and not injected(c)]

    plain_old = [c for c in executed if not injected(c)]
    plain_new = [c for c in src.cells if not injected(c)]
    if code(plain_old) != code(plain_new) or [c.cell_type for c in plain_old] != [c.cell_type for c in plain_new]:
        raise SystemExit(f"error: the code of {name} changed; execute it instead of syncing its prose")
    for old, new in zip(plain_old, plain_new):
        if old.cell_type == "markdown":
            old.source = new.source
    old_colab = [c for c in executed if injected(c)]
    new_colab = [c for c in src.cells if injected(c)]
    if new_colab and [c.cell_type for c in old_colab] != [c.cell_type for c in new_colab]:
        raise SystemExit(f"error: {name} needs new Colab cells (a repository was configured); execute it")
    for old, new in zip(old_colab, new_colab):
        old.source, old.metadata["tags"] = new.source, list(new.metadata["tags"])
    if not new_colab:  # no repository configured any more: no badge or install cell
        nb.cells = [c for c in nb.cells if not injected(c)]
    hide_injected_parameters(nb)
    nbformat.write(nb, out)


def task_graph(names: list[str], profile: str, seed: int) -> dict[str, list[str]]:
    """Tasks (the chapters ``names`` and the trainings they need) -> the tasks each waits for.

    A chapter waits only for chapters that are in ``names`` (the others are taken as
    already executed); tasks come in the order a free lane should take them.
    """
    from recnotes.profiles import get_profile

    seeds = get_profile(profile).seeds
    graph: dict[str, list[str]] = {}

    def expand(needs: list[str]) -> list[str]:
        """Resolve SEED/SEEDS and add the tasks that are not chapters (with their own needs)."""
        deps = []
        for need in needs:
            if need.startswith("train:"):
                _, model, which = need.split(":")
                models = neural_models() if model == "NEURAL" else [model]
                tasks = [f"train:{m}:{s}" for m in models for s in (seeds if which == "SEEDS" else (seed,))]
            elif need == "llm:*":
                tasks = llm_tasks()
            elif need.startswith("llm:"):
                tasks = [need]
            elif need in names:
                deps.append(need)
                continue
            else:
                continue
            for task in tasks:
                if task not in graph:
                    graph[task] = []
                    graph[task] = expand(llm_needs(task, profile, seed) if task.startswith("llm:") else [])
                deps.append(task)
        return deps

    for name in names:
        graph[name] = expand(NEEDS.get(name, []))

    def rank(task: str) -> tuple[int, str]:
        hits = [i for i, p in enumerate(PRIORITY) if task == p or task.startswith(p + ":")]
        return (hits[0] if hits else len(PRIORITY), task)

    return {t: graph[t] for t in sorted(graph, key=rank)}


def command(task: str, profile: str, seed: int, threads: int) -> list[str]:
    if task.startswith("train:"):
        _, model, s = task.split(":")
        model, _, init = model.partition("-")  # "GPTRec-text": GPTRec with its items started from text
        extra = ["--item-init", init] if init else []
        return [sys.executable, "-m", "recnotes.experiments", model, "--seed", s, "--profile", profile, *extra]
    if task.startswith("llm:"):
        return [sys.executable, "-m", "recnotes.llm_tasks", task.split(":", 1)[1], "--seed", str(seed),
                "--profile", profile]
    return [sys.executable, str(Path(__file__).resolve()), "--profile", profile, "--seed", str(seed),
            "--jobs", "1", "--threads", str(threads), task]


def run_parallel(names: list[str], profile: str, seed: int, jobs: int, threads: int) -> int:
    """Run the chapters (and the trainings they need) in ``jobs`` lanes; 1 on any failure."""
    graph = task_graph(names, profile, seed)
    pending, running, done = list(graph), {}, set()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="recnotes-lanes-") as tmp:
        while pending or running:
            while len(running) < jobs:
                ready = next((t for t in pending if all(d in done for d in graph[t])), None)
                if ready is None:
                    break
                pending.remove(ready)
                log = open(Path(tmp) / ready.replace(":", "_"), "w+")
                proc = subprocess.Popen(command(ready, profile, seed, threads), stdout=log,
                                        stderr=subprocess.STDOUT, cwd=ROOT)
                running[ready] = (proc, log, time.perf_counter())
                print(f"[{time.perf_counter() - start:6.0f} s] start {ready}", flush=True)
            if not running:
                print(f"error: tasks wait on each other: {pending}", file=sys.stderr)
                return 1
            time.sleep(0.5)
            for task, (proc, log, t0) in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[task]
                took = time.perf_counter() - t0
                log.seek(0)
                output = log.read()
                log.close()
                if proc.returncode != 0:
                    print(output[-20000:], file=sys.stderr)
                    print(f"error: {task} failed (exit {proc.returncode}); stopping the other lanes",
                          file=sys.stderr)
                    for other, *_ in running.values():
                        other.terminate()
                    for other, *_ in running.values():
                        other.wait()
                    return 1
                done.add(task)
                print(f"[{time.perf_counter() - start:6.0f} s] done  {task} in {took:.0f} s", flush=True)
    print(f"executed {len(names)} chapter(s) in {time.perf_counter() - start:.0f} s with {jobs} lanes "
          f"of {threads} PyTorch thread(s)", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("chapters", nargs="*", help="chapter names (default: all in notebooks/)")
    parser.add_argument("--profile", default=os.environ.get("RECNOTES_PROFILE", "full"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="chapters executed in parallel (default 1)")
    parser.add_argument("--threads", type=int, default=1,
                        help="PyTorch threads of each chapter's kernel (default 1)")
    parser.add_argument("--prose-only", action="store_true",
                        help="only copy edited markdown (and the Colab cells) into already executed notebooks "
                             "(code unchanged)")
    args = parser.parse_args(argv)
    # No progress bars in the published outputs (the kernel inherits this).
    os.environ.setdefault("RECNOTES_PROGRESS", "0")
    os.environ.setdefault("TQDM_DISABLE", "1")  # also the bars of third-party loaders
    # every kernel and training process (they inherit the environment) uses this many threads
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
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
    if args.jobs < 1 or args.threads < 1:
        print("error: --jobs and --threads must be >= 1", file=sys.stderr)
        return 2
    if args.jobs > 1:
        return run_parallel(names, args.profile, args.seed, args.jobs, args.threads)
    for name in names:
        print(f"executing {name} (profile={args.profile}, seed={args.seed}) ...", flush=True)
        seconds = execute(name, args.profile, args.seed)
        print(f"  done in {seconds:.1f} s -> book/{name}.ipynb", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
