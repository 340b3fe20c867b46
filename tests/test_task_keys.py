"""A result computed by the executor's lane command (``python -m ...``, where the module is
named ``__main__``) is the result a chapter finds in the cache: the same key in both, so
``make book`` never computes a run twice. (A key that held the running module's own name
once made chapter 6 recompute every LLM run its lanes had computed.)"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_runs_computed_by_the_lane_commands_are_found_by_a_chapter(tmp_path):
    from recnotes.assets import cache_dir
    from recnotes.fingerprint import code_fingerprint

    with pytest.raises(ValueError, match="not '__main__'"):
        code_fingerprint("__main__")
    cache = tmp_path / "cache"
    cache.mkdir()
    for entry in cache_dir().iterdir():
        if entry.name != "experiments":
            (cache / entry.name).symlink_to(entry.resolve())
    env = {**os.environ, "RECNOTES_CACHE": str(cache), "RECNOTES_PROFILE": "smoke", "RECNOTES_PROGRESS": "0",
           "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    for module, task in (("recnotes.experiments", "GPTRec"), ("recnotes.llm_tasks", "zero-shot-completion")):
        subprocess.run([sys.executable, "-m", module, task, "--profile", "smoke"], env=env, check=True,
                       capture_output=True, timeout=900)
    check = ("from recnotes.experiments import GPTRecConfig, run\n"
             "from recnotes.llm_experiments import llm_scores\n"
             "from recnotes.llm_tasks import task_config\n"
             "print(run(GPTRecConfig(profile='smoke'), progress=False).cached,\n"
             "      llm_scores(task_config('zero-shot-completion', profile='smoke'), progress=False).cached)\n")
    out = subprocess.run([sys.executable, "-c", check], env=env, check=True, capture_output=True, text=True,
                         timeout=900)
    assert out.stdout.split()[-2:] == ["True", "True"], out.stdout + out.stderr
