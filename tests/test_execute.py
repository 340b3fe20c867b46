"""scripts/execute.py's parallel lanes: what waits for what."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("execute", ROOT / "scripts" / "execute.py")
execute = importlib.util.module_from_spec(spec)
spec.loader.exec_module(execute)
CHAPTERS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.md"))


@pytest.mark.parametrize("name", CHAPTERS)
def test_a_chapter_that_reads_another_chapters_results_waits_for_it(name):
    text = (ROOT / "notebooks" / f"{name}.md").read_text()
    read = {c for c in CHAPTERS if c != name and re.search(rf"[\"']{c}[\"']", text)}
    assert read <= set(execute.NEEDS.get(name, [])), f"{name} reads {sorted(read)}: list them in NEEDS"


def test_needs_name_existing_chapters_and_models():
    from recnotes.experiments import CONFIGS

    for name, needs in execute.NEEDS.items():
        assert name in CHAPTERS
        for need in needs:
            if need.startswith("train:"):
                _, model, which = need.split(":")
                from recnotes.experiments import ITEM_INITS

                if model == "NEURAL":
                    assert which in ("SEED", "SEEDS")
                    continue
                base, _, init = model.partition("-")
                assert base in CONFIGS and which in ("SEED", "SEEDS") and (not init or init in ITEM_INITS)
                command = execute.command(need.replace("SEEDS", "0").replace("SEED", "0"), "ci", 0, 1)
                assert command[3] == base and (["--item-init", init] == command[-2:] if init else True)
            elif need.startswith("llm:"):
                from recnotes.llm_tasks import GROUPS, TASKS

                assert need == "llm:*" or need.split(":", 1)[1] in {**TASKS, **GROUPS}
            else:
                assert need in CHAPTERS


def test_graph_orders_tasks_after_what_they_wait_for():
    graph = execute.task_graph(CHAPTERS, "full", seed=0)
    assert set(graph["09_evaluation"]) == {"06_llm"} | {f"train:{m}:{s}" for m in ("LSTM", "GPTRec") for s in (0, 1, 2)}
    assert set(CHAPTERS) <= set(graph)
    seen = set()
    for task in graph:  # the listed order alone is a valid sequential order
        assert set(graph[task]) <= seen, task
        seen.add(task)
    assert list(graph)[:2] == ["llm:lora", "train:GPTRec:0"]  # the longest chains first
    assert set(graph["llm:rerank-gptrec"]) == {"llm:lora", "train:GPTRec:0"}
    assert set(graph["llm:list"]) == {"llm:lora"}


def test_a_model_added_to_the_configs_is_trained_for_the_chapters_that_compare_every_model(monkeypatch):
    """Adding a model is one config entry: the executor then trains it, every seed, before the
    chapters that compare all the models, and runs every LLM task before chapter 6."""
    from dataclasses import dataclass

    from recnotes import experiments
    from recnotes.llm_tasks import GROUPS, TASKS, group_of

    @dataclass(frozen=True)
    class ToyConfig(experiments.NeuralConfig):
        pass

    monkeypatch.setitem(experiments.CONFIGS, "Toy", ToyConfig)
    graph = execute.task_graph(CHAPTERS, "full", seed=0)
    for chapter in ("05_code", "07_applications", "09_evaluation"):
        assert {f"train:Toy:{s}" for s in (0, 1, 2)} <= set(graph[chapter])
    assert execute.command("train:Toy:1", "full", 0, 1)[3:6] == ["Toy", "--seed", "1"]
    llm = {t for t in graph["06_llm"] if t.startswith("llm:")}
    assert llm == {f"llm:{g}" for g in GROUPS} | {f"llm:{t}" for t in TASKS if group_of(t) is None}


def test_graph_ignores_chapters_not_selected():
    graph = execute.task_graph(["09_evaluation"], "ci", seed=3)
    assert graph["09_evaluation"] == ["train:LSTM:0", "train:GPTRec:0"]  # ci profile: seed 0 only
    assert set(graph) == {"09_evaluation", "train:LSTM:0", "train:GPTRec:0"}


# ------------------------------------------------------------------ the Colab cells and the injected parameters
#: a repository as a reader's fork would configure it (the committed _config.yml may name none)
FORK = ("https://github.com/someone/recnotes-fork", "main")


def test_badge_is_a_local_image_that_links_to_colab():
    badge, _ = execute.colab_cells("04_math", *FORK)
    image, link = re.fullmatch(r"\[!\[Open in Colab\]\(([^)]+)\)\]\(([^)]+)\)", badge.source).groups()
    assert not image.startswith(("http:", "https:", "//")) and (ROOT / "book" / image).is_file()
    assert link == "https://colab.research.google.com/github/someone/recnotes-fork/blob/main/book/04_math.ipynb"


def test_no_repository_configured_no_badge_and_no_install_cell(monkeypatch):
    """A badge or a clone without a configured repository would point nowhere: none is made."""
    monkeypatch.setattr(execute, "repository", lambda: ("", "main"))
    assert execute.colab_cells("04_math") == []
    configured = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    monkeypatch.undo()
    assert (execute.colab_cells("04_math") == []) == (not configured)


def test_install_cell_clones_installs_and_works_in_book_only_on_colab():
    _, install = execute.colab_cells("11_faq", *FORK)
    url, branch = FORK
    src = install.source
    assert "'google.colab' in sys.modules" in src and f"'{url}'" in src and "RECNOTES_REPO_URL" in src
    assert f"'--depth', '1', '-b', '{branch}'" in src and "%pip install -q './recnotes[llm]'" in src
    assert "os.chdir('recnotes/book')" in src and install.metadata["tags"] == [execute.INJECTED_TAG, "hide-input"]


def test_install_cell_does_nothing_outside_colab(tmp_path, monkeypatch):
    from IPython.core.inputtransformer2 import TransformerManager

    _, install = execute.colab_cells("11_faq", *FORK)
    code = TransformerManager().transform_cell(install.source)  # %pip -> get_ipython().run_line_magic(...)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(__import__("sys").modules, "google.colab", raising=False)
    exec(compile(code, "install-cell", "exec"), {})  # no get_ipython(): it must not get that far
    assert Path.cwd() == tmp_path and not any(tmp_path.iterdir())


def test_injected_parameters_are_tagged_remove_cell():
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("profile = 'full'"),
                                         nbformat.v4.new_code_cell("profile = 'ci'")])
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.cells[1].metadata["tags"] = ["injected-parameters"]
    execute.hide_injected_parameters(nb)
    execute.hide_injected_parameters(nb)  # idempotent
    assert nb.cells[0].metadata["tags"] == ["parameters"]
    assert nb.cells[1].metadata["tags"] == ["injected-parameters", "remove-cell"]
