"""Must-show 5 (slow): the toy analysis benchmark builds a real run directory (search trials, drift rollouts) and the
analyses produce the transfer matrix, BAI and validation table from it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "toy_analysis.py"


@pytest.mark.slow
def test_toy_run_directory_gives_transfer_bai_and_validation(small_family, tmp_path):
    family, _ = small_family
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    run = tmp_path / "run"
    subprocess.run([sys.executable, str(SCRIPT), "--run-dir", str(run), "--toy-scale", "0.05",
                    "--toy-home", str(family.root.parent), "--questions", "4",
                    "--n-trials", "4", "--drift-questions", "8", "--max-new-tokens", "12", "--n-contrast", "16"],
                   check=True, env=env, timeout=3000)
    out = run / "data" / "analysis"
    matrix = pq.read_table(out / "transfer_matrix.parquet").to_pylist()
    assert {(r["vector_source"], r["target_model"]) for r in matrix} == {
        (s, t) for s in ("llama-base", "llama-sft", "llama-dpo") for t in ("llama-sft", "llama-dpo")}
    validation = pq.read_table(out / "validation.parquet").to_pylist()
    assert {r["model"] for r in validation} == {"llama-sft", "llama-dpo", "qwen2-sft", "mistral-sft"}
    assert all(r["n"] == 8 * 4 for r in validation)
    assert {r["label"] for r in pq.read_table(out / "bai.parquet").to_pylist()} <= {"BROKEN", "WEAK", "FUNCTIONAL"}
