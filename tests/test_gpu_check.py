"""``scripts/gpu_check.py --quick`` runs on the CPU, as it will on a GPU that cannot download:
the LLM is a randomly initialised model of the pinned architecture with a word-level tokenizer,
GPTRec trains in the smoke profile, and the report holds every section with sane values.

The check it carries is real even at toy sizes: the packed scorer against the naive one
(each candidate with its own prompt), in float32 and in bf16, within the stated tolerances.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_quick_runs_on_the_cpu(tmp_path):
    env = {**os.environ, "RECNOTES_PROGRESS": "0", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--quick", "--device", "cpu",
                           "--random-llm", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["quick"] is True
    # GPTRec: the default and the largest configuration searched, each trained and evaluated
    assert {r["config"] for r in report["gptrec"]} >= {"default"}
    for row in report["gptrec"]:
        assert row["epochs"] >= 1 and row["train_seconds"] > 0
        assert 0 <= row["test_ndcg10"] <= 1 and 0 <= row["valid_ndcg10"] <= 1
    llm = report["llm"]
    assert llm["weights"].startswith("random weights")
    # every scorer timed on the same users
    assert set(llm["scoring"]) == {"shared prefix", "packed, 1 user/pass", "packed, 8 users/pass",
                                   "packed, 32 users/pass"}
    assert all(v["users_per_second"] > 0 and v["tokens_per_user"] > 0 for v in llm["scoring"].values())
    # packed vs naive, both precisions, within the tolerances the script states
    assert set(llm["correctness"]) == {"float32", "bfloat16"}
    for name, c in llm["correctness"].items():
        assert c["ok"] and 0 <= c["max_abs_diff"] <= c["tolerance"], (name, c)
    # one pass of sequence fine-tuning over its (quick: few) windows
    lora = llm["lora_epoch_batch_4"]
    assert lora["targets"] >= 60 and lora["train_targets"] > lora["targets"]
    assert lora["targets_per_second"] > 0 and lora["final_loss"] == lora["final_loss"]  # not NaN
