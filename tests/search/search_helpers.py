"""Helpers of the search tests: a worker that logs the rows it generated, a lexicon scorer, questions."""

from __future__ import annotations

import os
from pathlib import Path

from steersweep.actors import ModelWorker

HAPPY = {"happy", "bright", "warm", "good", "sun"}
SAD = {"sad", "dark", "cold", "bad", "rain"}
QUESTIONS = ["the day is", "the city was", "we sing", "the dog sleeps", "tomorrow the river"]


def lexicon_score(question: str, response: str) -> tuple[float, float]:
    """Trait: share of happy words among happy + sad ones (50 when none); coherence: distinct-word share x 100."""
    words = response.split()
    happy, sad = sum(w in HAPPY for w in words), sum(w in SAD for w in words)
    trait = 50.0 if happy + sad == 0 else 100.0 * happy / (happy + sad)
    return trait, (100.0 * len(set(words)) / len(words)) if words else 0.0


class LoggingWorker(ModelWorker):
    """A real ModelWorker that appends the tag of every row it generated to a log file when a steer call finishes
    (the "actor call log" of the crash tests), optionally sleeping first, or exiting on a given call."""

    def __init__(self, spec, log_path: str, delay_from_call: int | None = None, delay: float = 0.0,
                 exit_on_call: int | None = None, max_batch_size: int = 64) -> None:
        super().__init__(spec, max_batch_size=max_batch_size)
        self.log_path, self.delay_from_call, self.delay, self.exit_on_call = log_path, delay_from_call, delay, \
            exit_on_call
        self.calls = 0

    def steer(self, request):
        import time

        self.calls += 1
        if self.exit_on_call is not None and self.calls == self.exit_on_call:
            os._exit(1)
        if self.delay_from_call is not None and self.calls >= self.delay_from_call:
            time.sleep(self.delay)
        reply = super().steer(request)
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write("".join(f"{tag}\n" for tag in reply.tags))
            log.flush()
            os.fsync(log.fileno())
        return reply

    def call_count(self) -> int:
        return self.calls


def read_log(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def remote_logging_worker(**options):
    """``LoggingWorker`` as a Ray actor class (this module travels by value: Ray workers do not see tests/)."""
    import sys

    import ray

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    return ray.remote(LoggingWorker).options(**options)
