"""A search driver run as a subprocess by test_crash_subprocess.py: Ray, one LoggingWorker actor, a SQLite study.

    python crash_driver.py MODEL_DIR RUN_DIR LOG_PATH N_TRIALS   (STEERSWEEP_FAULT=point:count SIGKILLs it)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np
from search_helpers import QUESTIONS, lexicon_score, remote_logging_worker

from steersweep.actors import ModelSpec
from steersweep.actors.judges import JudgeCache, RuleJudge
from steersweep.search import SearchSpace, search


def main() -> None:
    import ray

    model_dir, run_dir, log_path, n_trials = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    # from its 3rd call on, the actor waits 4 s before generating: a SIGKILL of the driver lands mid-generation of
    # the call in flight, and Ray kills the actor with its owner before it finishes (so it never logs those rows)
    actor = remote_logging_worker(num_cpus=0).remote(ModelSpec(model_dir, device="cpu"), log_path,
                                                     delay_from_call=3, delay=4.0)
    vector = np.random.default_rng(0).normal(size=(4, 32))
    judge = RuleJudge(lexicon_score, name="lexicon", cache=JudgeCache.for_run_dir(run_dir))
    result = search({"tiny": [actor]}, vector, QUESTIONS, SearchSpace(), sampler="tpe", judge=judge,
                    run_dir=run_dir, n_trials=n_trials, rows_per_call=15, live=False, max_new_tokens=6)
    print("best", {k: None if v is None else v["trial_number"] for k, v in result.best.items()}, flush=True)
    ray.shutdown()


if __name__ == "__main__":
    main()
