"""Time a full toy family build (``build_family(force=True)``) on CPU: seconds per model and in total.

The build trains on one thread, so wall time depends on how busy the machine is: the script prints the wall
seconds, the process CPU seconds (what the build would take on an otherwise idle core) and the load average at the
start and the end, so a number taken while other work shares the CPU can be told apart from a quiet one.

    python benchmarks/bench_toy_build.py                   # one full build into a temporary folder
    python benchmarks/bench_toy_build.py --repeats 2 --check-identical
    python benchmarks/bench_toy_build.py --workers 1      # everything in this process, one model after another
    python benchmarks/bench_toy_build.py --scale 0.1       # the quick family the default tests build
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def build_once(home: Path, seed: int, scale: float, workers: int | None) -> tuple[dict[str, float], float, float]:
    from steersweep.actors.toy import BuildProgress, build_family

    per_model: dict[str, float] = {}

    def progress(event: BuildProgress) -> None:
        if event.stage == "done":
            per_model[event.key] = event.seconds
            print(f"  {event.index}/{event.total} {event.key:<12} {event.seconds:6.1f} s  "
                  f"final loss {event.loss:.4f} ({event.epochs} epochs)", flush=True)

    wall, cpu = time.perf_counter(), time.process_time()
    build_family(home, seed=seed, force=True, progress=progress, scale=scale, workers=workers)
    return per_model, time.perf_counter() - wall, time.process_time() - cpu


def identical_weights(first: Path, second: Path) -> bool:
    from safetensors.torch import load_file

    from steersweep.actors.toy import FAMILY_KEYS

    for key in FAMILY_KEYS:
        a, b = load_file(first / key / "model.safetensors"), load_file(second / key / "model.safetensors")
        if a.keys() != b.keys() or any(not a[name].equal(b[name]) for name in a):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--workers", type=int, default=None, help="training processes (default: build_family's)")
    parser.add_argument("--check-identical", action="store_true", help="compare the weights of every repeat")
    args = parser.parse_args()

    import torch

    from steersweep.actors.toy import family_dir

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average at start {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="toy-bench-") as tmp:
        roots = []
        for repeat in range(args.repeats):
            home = Path(tmp) / f"home{repeat}"
            print(f"build {repeat + 1}/{args.repeats} (seed {args.seed}, scale {args.scale:g}, "
                  f"workers {args.workers or 'default'}):")
            per_model, wall, cpu = build_once(home, args.seed, args.scale, args.workers)
            print(f"  total: {wall:.1f} s wall, {cpu:.1f} s CPU in this process (sum of per-model wall "
                  f"{sum(per_model.values()):.1f} s); "
                  f"load average now {os.getloadavg()}")
            roots.append(family_dir(home, args.seed, args.scale))
        if args.check_identical and len(roots) > 1:
            same = all(identical_weights(roots[0], root) for root in roots[1:])
            print(f"weights identical across {len(roots)} builds: {same}")


if __name__ == "__main__":
    main()
