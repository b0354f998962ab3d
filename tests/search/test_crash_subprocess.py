"""Must-show 4: SIGKILL of the driver in the middle of a search (a real subprocess with Ray, at two different
points), then the same command again: the study ends with exactly the configured number of complete trials, none
duplicated, and no response generated twice (counted from the Parquet and the actor's call log)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from crash_check import check_exact

from steersweep.search import FAULT_ENV

DRIVER = Path(__file__).with_name("crash_driver.py")


def _run(args: list[str], fault: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop(FAULT_ENV, None)
    if fault:
        env[FAULT_ENV] = fault
    return subprocess.run([sys.executable, str(DRIVER), *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("fault", [
    "responses_written:2",   # call 2's responses on disk, its trial rows not; call 3 generating on the actor
    "trials_written:3",      # call 3's trial rows on disk, Optuna not told; call 4 generating on the actor
])
def test_sigkill_then_rerun_counts_exactly(fault, tiny_llama, tmp_path):
    log = tmp_path / "calls.log"
    args = [tiny_llama, str(tmp_path / "run"), str(log), "12"]
    killed = _run(args, fault)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    again = _run(args, None)
    assert again.returncode == 0, again.stderr[-3000:]
    counts = check_exact(tmp_path / "run", 12, [log])
    assert counts["failed"] == 3  # the 3 trials of the call in flight: failed, re-enqueued, generated once
    assert counts["generated"] == counts["responses"] == 13 * 5
