"""Cache keys hold a fingerprint of the code that produces a result, read from the source:
a change to what runs (in the module or in one it imports, even inside a function) gives a
new key; a comment, a docstring or a module nobody imports does not."""

from __future__ import annotations

import shutil
import sys
import textwrap

import pytest

from recnotes import fingerprint
from recnotes.fingerprint import code_fingerprint, code_modules


@pytest.fixture
def toy(tmp_path, monkeypatch):
    pkg = tmp_path / "toypkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": '"""A."""\nfrom . import b\nfrom .sub import c as _c\n\ndef f(x):\n    return b.g(x) + 1\n',
        "b.py": "def g(x):\n    from .sub.d import h  # imported when it runs\n    return 2 * h(x)\n",
        "sub/__init__.py": "",
        "sub/c.py": "import json\nimport toypkg.b\nK = 3\n",
        "sub/d.py": "def h(x):\n    return x\n",
        "unused.py": "Z = 1\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    fingerprint._origin.cache_clear(), fingerprint._module.cache_clear()
    yield pkg
    for m in [m for m in sys.modules if m.startswith("toypkg")]:
        del sys.modules[m]
    fingerprint._origin.cache_clear(), fingerprint._module.cache_clear()


def edit(path, old, new):
    path.write_text(path.read_text().replace(old, new))
    fingerprint._origin.cache_clear(), fingerprint._module.cache_clear()


def test_the_modules_are_followed_through_every_import(toy):
    assert code_modules("toypkg.a") == ["toypkg.a", "toypkg.b", "toypkg.sub.c", "toypkg.sub.d"]


def test_code_changes_move_the_fingerprint_and_words_do_not(toy):
    before = code_fingerprint("toypkg.a")
    edit(toy / "a.py", '"""A."""', '"""A, described at length."""\n# a comment')
    edit(toy / "sub/d.py", "    return x", "    return x  # the same")
    (toy / "unused.py").write_text("Z = 2\n")
    assert code_fingerprint("toypkg.a") == before
    edit(toy / "sub/d.py", "    return x", "    return x + 0")  # two imports away, inside a function
    assert code_fingerprint("toypkg.a") != before


def test_a_changed_model_gets_a_new_experiment_key_and_the_others_keep_theirs(tmp_path, monkeypatch, split):
    from recnotes.experiments import GPTRecConfig, LSTMConfig, experiment_key

    gptrec, lstm = GPTRecConfig(profile="ci"), LSTMConfig(profile="ci")
    keys = experiment_key(gptrec, split), experiment_key(lstm, split)
    source = fingerprint._origin("recnotes.models.gptrec")
    copy = tmp_path / "gptrec.py"
    shutil.copy(source, copy)
    copy.write_text(copy.read_text() + textwrap.dedent('''
        def _also():
            return 1
    '''))
    real = fingerprint._origin
    monkeypatch.setattr(fingerprint, "_origin", lambda m: copy if m == "recnotes.models.gptrec" else real(m))
    fingerprint._module.cache_clear()
    try:
        assert experiment_key(gptrec, split) != keys[0]
        assert experiment_key(lstm, split) == keys[1]
    finally:
        fingerprint._module.cache_clear()


def test_the_llm_task_table_is_not_part_of_an_llm_runs_key():
    """The task table and command line (recnotes.llm_tasks) only build configs, whose fields are
    in the key: editing them recomputes nothing.  The code that computes a run is."""
    from recnotes import llm_experiments

    modules = fingerprint.code_modules(*llm_experiments.PRODUCING_MODULES)
    assert "recnotes.llm_tasks" not in modules
    assert {"recnotes.models.llm.finetune", "recnotes.models.llm.likelihood", "recnotes.safeio"} <= set(modules)
    assert "recnotes.llm_tasks" not in fingerprint._module("recnotes.llm_experiments")[1]
