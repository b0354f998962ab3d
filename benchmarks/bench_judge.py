"""Judge throughput: judgments/s of OpenAIJudge against the local OpenAI-compatible test server, 64 requests in flight.

The server (tests/judges/judge_server.py) runs in its own process on 127.0.0.1, so client and server do not share
one interpreter lock; with ``--latency-ms`` it holds every answer that long, like a remote API. The start-up probe
is sent before the clock starts. Also measured: judging the same items again (every judgment a cache hit).

    python benchmarks/bench_judge.py                      # 1000 items x 2 metrics, latency 0 and 50 ms, 3 repeats
    python benchmarks/bench_judge.py --items 200 --latency-ms 0 --repeats 1
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERVER = REPO / "tests" / "judges" / "judge_server.py"

logger = logging.getLogger("bench_judge")


def start_server(latency_ms: float) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, str(SERVER), "--port", "0", "--latency-ms", str(latency_ms)],
        stdout=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("PORT "):
        process.kill()
        raise RuntimeError(f"the test server did not start (it printed {line!r})")
    return process, f"http://127.0.0.1:{int(line.split()[1])}/v1"


async def measure(base_url: str, n_items: int, in_flight: int, run: int) -> dict[str, float]:
    from steersweep.actors.judges import OpenAIJudge, TraitDefinition

    trait = TraitDefinition("optimism", "Expecting good outcomes and looking at the bright side of things.")
    pairs = [(f"Run {run}: how was day {i}?", f"Run {run}: day {i} was bright and good.") for i in range(n_items)]
    judge = OpenAIJudge("bench-judge", base_url=base_url, api_key="bench", max_in_flight=in_flight)
    try:
        await judge.astart()  # the probe is not part of the measurement
        started, cpu_started = time.perf_counter(), time.process_time()
        result = await judge.ajudge(pairs, trait)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        started = time.perf_counter()
        cached = await judge.ajudge(pairs, trait)
        cached_elapsed = time.perf_counter() - started
    finally:
        await judge.aclose()
    counters = result.counters
    if counters.judgments != 2 * n_items or counters.failures or cached.counters.requests:
        raise RuntimeError(f"unexpected counters: {counters} / cached {cached.counters}")
    return {
        "judgments": counters.judgments,
        "seconds": elapsed,
        "judgments_per_s": counters.judgments / elapsed,
        "client_cpu_ms_per_judgment": 1000.0 * cpu / counters.judgments,
        "cached_judgments_per_s": cached.counters.cache_hits / cached_elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000, help="items per run (each gives 2 judgments)")
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0.0, 50.0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    print(f"judge throughput, OpenAIJudge -> local test server (separate process), {args.in_flight} in flight, "
          f"{os.cpu_count()} CPU cores on this machine")
    print(f"{'server latency':>15} | {'n judgments/run':>15} | {'runs':>4} | {'judgments/s (median, min-max)':>30} "
          f"| {'client CPU ms/judgment':>22} | {'cache hits/s (median)':>21}")
    for latency_ms in args.latency_ms:
        process, base_url = start_server(latency_ms)
        try:
            runs = [asyncio.run(measure(base_url, args.items, args.in_flight, run)) for run in range(args.repeats)]
        finally:
            process.terminate()
            process.wait(timeout=10)
        rates = [run["judgments_per_s"] for run in runs]
        cached = statistics.median(run["cached_judgments_per_s"] for run in runs)
        cpu_ms = statistics.median(run["client_cpu_ms_per_judgment"] for run in runs)
        spread = f"{statistics.median(rates):8.0f} ({min(rates):.0f}-{max(rates):.0f})"
        print(f"{latency_ms:>12.0f} ms | {int(runs[0]['judgments']):>15} | {len(runs):>4} | {spread:>30} "
              f"| {cpu_ms:>22.2f} | {cached:>21.0f}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average (1 min) at the end: {load:.1f} on {os.cpu_count()} cores; with server latency L the "
          f"ceiling is {args.in_flight} / L judgments/s ({args.in_flight / 0.05:.0f}/s at 50 ms) when the client "
          "has a free core")


if __name__ == "__main__":
    main()
