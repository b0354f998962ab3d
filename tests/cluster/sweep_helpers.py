"""What the cluster's sweep tests share: a small grid sweep over tiny models and the exactly-once count."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

WORDS = "the a cat dog sun rain day night is was happy sad bright dark warm cold good bad and but so".split()


def save_tiny_llama(folder: Path, seed: int = 0) -> Path:
    from steersweep.actors.toy import ToyConfig, build_word_tokenizer, make_model

    tokenizer = build_word_tokenizer(WORDS, None)
    config = ToyConfig("llama", hidden_size=32, num_layers=4, num_heads=4, num_kv_heads=2, intermediate_size=64,
                       max_positions=128, initializer_range=0.2)
    model = make_model(config, len(tokenizer), seed, {"pad": 0, "bos": 1, "eos": 2}).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


QUESTIONS = ("the cat is", "the day was", "a dog is", "the sun is")
N_TRIALS = 8
COMPARED = ("study", "trial_number", "state", "layer", "perturbation_ratio", "coefficient", "trait_score",
            "coherence", "n")


def score(question: str, response: str) -> tuple[float, float]:
    """Trait = share of happy/bright/warm/good among the mood words (50 when none); coherence fixed at 90."""
    words = response.split()
    happy = sum(w in {"happy", "bright", "warm", "good"} for w in words)
    sad = sum(w in {"sad", "dark", "cold", "bad"} for w in words)
    return (50.0 if happy + sad == 0 else 100.0 * happy / (happy + sad)), 90.0


def vector(hidden: int = 32, layers: int = 4) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(layers, hidden)).astype(np.float32)


def run_sweep(actors: dict, run_dir: Path):
    """A grid search of N_TRIALS trials per model, two trials (8 rows) per steer call, rule judge."""
    from steersweep.actors.judges import JudgeCache, RuleJudge
    from steersweep.search import SearchSpace, search

    judge = RuleJudge(score, cache=JudgeCache.for_run_dir(run_dir))
    return search(actors, vector(), list(QUESTIONS), SearchSpace(ratio=(0.2, 4.0)), sampler="grid", judge=judge,
                  run_dir=run_dir, n_trials=N_TRIALS, max_new_tokens=16, seed=0, rows_per_call=2 * len(QUESTIONS),
                  live=False)


def trial_counts(run_dir: Path) -> tuple[Counter, Counter]:
    """(trial rows per (study, trial), response rows per (study, trial)) from the Parquet tables."""
    from steersweep.actors.paths import RunPaths
    from steersweep.search import read_rows

    paths = RunPaths(run_dir)
    trials = read_rows(paths, "trials").to_pylist()
    responses = read_rows(paths, "responses").to_pylist()
    return (Counter((r["study"], r["trial_number"]) for r in trials if r["state"] == "COMPLETE"),
            Counter((r["study"], r["trial_number"]) for r in responses))


def compared_rows(result) -> list[tuple]:
    frame = result.trials.sort_values(["study", "trial_number"])
    return [tuple(round(v, 9) if isinstance(v, float) else v for v in row)
            for row in frame[list(COMPARED)].itertuples(index=False)]


def faulty_worker_class():
    """ModelWorker that SIGKILLs its own process in the middle of its ``kill_at``-th steer call, once (a marker
    file outlives the process, so the restarted actor does not kill itself again). Built in a function so Ray
    ships the class by value."""
    from steersweep.actors import ModelWorker

    class SelfKillingWorker(ModelWorker):
        def __init__(self, spec, marker: str, kill_at: int, delay_s: float = 0.05):
            super().__init__(spec)
            self.marker, self.kill_at, self.delay_s, self.calls = Path(marker), kill_at, delay_s, 0

        def steer(self, request):
            self.calls += 1
            if self.calls == self.kill_at and not self.marker.exists():
                self.marker.write_text(f"{os.getpid()} {len(request.rows)} rows {time.time()}")
                threading.Timer(self.delay_s, os.kill, (os.getpid(), signal.SIGKILL)).start()
                time.sleep(10 * self.delay_s)  # the call is certainly still running when the signal lands
            return super().steer(request)

    return SelfKillingWorker
