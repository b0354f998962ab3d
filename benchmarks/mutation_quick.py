"""Run every mutmut mutant of one module against chosen test files in ONE pytest process per mutant-free session.

mutmut forks a fresh pytest per mutant, which on a loaded machine costs minutes per mutant (imports, fixtures). The
mutants that ``benchmarks/mutation.sh`` generated switch on the environment variable ``MUTANT_UNDER_TEST`` at call
time, so this script keeps one Python process, sets the variable, and calls ``pytest.main`` once per mutant:

    python benchmarks/mutation_quick.py --json positions.json build/mutation steersweep.actors.positions. \\
        tests/actors/test_positions_bugs.py tests/actors/test_capture.py -k "not through_ray"

Every listed test runs for every mutant (no per-function selection), ``-x`` stops at the first failure, and a
mutant running longer than ``--budget`` seconds is reported as a timeout. Prints one line per mutant and a count.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import sys
import time
from pathlib import Path


class _MutantTimeout(BaseException):
    pass


def _on_alarm(_signum, _frame):
    raise _MutantTimeout


def _natural(key: str) -> tuple[str, int]:
    base, _, number = key.rpartition("__mutmut_")
    return base, int(number)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", type=Path, help="the folder benchmarks/mutation.sh staged (holds mutants/)")
    parser.add_argument("prefix", help="mutant-name prefixes, comma-separated, e.g. steersweep.actors.positions.; "
                        "a trailing $ makes one an exact name")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER,
                        help="test files and pytest options (this script's own options go before STAGE)")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds per mutant before it counts as timeout")
    parser.add_argument("--json", type=Path, help="write {mutant: status} here")
    args = parser.parse_args()
    mutants = (args.stage / "mutants").resolve()
    prefixes = tuple(p for p in args.prefix.split(",") if not p.endswith("$"))
    exact = {p[:-1] for p in args.prefix.split(",") if p.endswith("$")}
    keys = sorted((key for meta in mutants.rglob("*.meta") for key in json.loads(meta.read_text())["exit_code_by_key"]
                   if key in exact or (prefixes and key.startswith(prefixes))), key=_natural)
    os.chdir(mutants)
    sys.path.insert(0, str(mutants))
    import pytest

    def run(mutant: str) -> int:
        os.environ["MUTANT_UNDER_TEST"] = mutant
        signal.setitimer(signal.ITIMER_REAL, args.budget)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                return int(pytest.main(["-q", "-x", "-p", "no:cacheprovider", *args.pytest_args]))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    signal.signal(signal.SIGALRM, _on_alarm)
    clean = run("")
    if clean != 0:
        print(f"the tests fail without any mutant (pytest exit code {clean}); fix that first")
        return 2
    import steersweep

    assert any(str(mutants) in p for p in steersweep.__path__), steersweep.__path__
    status: dict[str, str] = {}
    for key in keys:
        started = time.perf_counter()
        try:
            code = run(key)
            status[key] = {0: "survived", 1: "killed"}.get(code, f"error (pytest exit code {code})")
        except _MutantTimeout:
            status[key] = "timeout"
        print(f"{status[key]:9s} {time.perf_counter() - started:6.1f} s  {key}", flush=True)
    counts = {s: sum(1 for v in status.values() if v == s) for s in sorted(set(status.values()))}
    print(f"{args.prefix}: {len(keys)} mutants, " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    if args.json:
        args.json.write_text(json.dumps(status, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
