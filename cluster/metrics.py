"""Sweep metrics through ``ray.util.metrics``: exported by every Ray node for the dashboard's Prometheus/Grafana.

Ray prefixes every name with ``ray_`` and counters also get ``_total``; a tag key that was not declared is dropped,
so each metric declares its tag keys here. :data:`METRICS` lists the names a user types into Grafana.

Example:
    >>> metrics = SweepMetrics()                                         # doctest: +SKIP
    >>> metrics.trial_finished("llama-sft/optimism/mean_diff", "COMPLETE", trait_score=71.5)  # doctest: +SKIP
    # Grafana: rate(ray_steersweep_trials_completed_total{study="llama-sft/optimism/mean_diff"}[5m])
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

PREFIX = "steersweep_"
LATENCY_BOUNDARIES_S = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]
ROWS_BOUNDARIES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]


@dataclass(frozen=True)
class MetricInfo:
    """One exported metric: Ray's name, its kind, tag keys and unit; ``grafana`` is what Prometheus stores."""

    name: str
    kind: str
    tags: tuple[str, ...]
    description: str

    @property
    def grafana(self) -> str:
        suffix = "_total" if self.kind == "counter" else ""
        return f"ray_{self.name}{suffix}"


METRICS: tuple[MetricInfo, ...] = (
    MetricInfo(f"{PREFIX}trials_completed", "counter", ("study",), "Trials told back COMPLETE, per study."),
    MetricInfo(f"{PREFIX}trials_failed", "counter", ("study", "reason"), "Trials that failed, per study."),
    MetricInfo(f"{PREFIX}best_trait_score", "gauge", ("study",),
               "Best trait score (0-100) among feasible trials so far, per study."),
    MetricInfo(f"{PREFIX}queue_depth", "gauge", ("study",), "Trials asked and not yet running, per study."),
    MetricInfo(f"{PREFIX}generated_tokens", "counter", ("actor", "model"), "Response tokens generated, per actor."),
    MetricInfo(f"{PREFIX}tokens_per_second", "gauge", ("actor", "model"),
               "Response tokens/s of the last steer call (tokens / wall seconds on the actor), per actor."),
    MetricInfo(f"{PREFIX}rows_per_steer_call", "histogram", ("actor", "model"),
               "Rows (prompt x steering configuration) packed into one steer call, per actor."),
    MetricInfo(f"{PREFIX}steer_retries", "counter", ("actor", "model", "reason"),
               "Steer calls retried: reason=oom (batch halved) or reason=restart (actor restarted)."),
    MetricInfo(f"{PREFIX}judge_requests", "counter", ("judge",),
               "Judge requests sent (HTTP or model requests; cache hits send none)."),
    MetricInfo(f"{PREFIX}judge_errors", "counter", ("judge",), "Judge requests that failed or were rejected."),
    MetricInfo(f"{PREFIX}judge_latency_seconds", "histogram", ("judge",),
               "Wall seconds of one judge call (one call scores a batch of responses)."),
)


class SweepMetrics:
    """The sweep's metrics, created once per process (Ray keys a metric by name; creating it twice is harmless
    but wasteful). Methods are no-ops-free thin calls: the scheduler, the judge and the steer wrapper call them."""

    _lock = threading.Lock()
    _instance: SweepMetrics | None = None

    def __init__(self) -> None:
        from ray.util.metrics import Counter, Gauge, Histogram

        made: dict[str, Any] = {}
        for info in METRICS:
            short = info.name.removeprefix(PREFIX)
            if info.kind == "counter":
                made[short] = Counter(info.name, description=info.description, tag_keys=info.tags)
            elif info.kind == "gauge":
                made[short] = Gauge(info.name, description=info.description, tag_keys=info.tags)
            else:
                boundaries = LATENCY_BOUNDARIES_S if "latency" in info.name else ROWS_BOUNDARIES
                made[short] = Histogram(info.name, description=info.description, boundaries=boundaries,
                                        tag_keys=info.tags)
        self._metrics = made
        self._best: dict[str, float] = {}

    @classmethod
    def get(cls) -> SweepMetrics:
        """The process-wide instance (needs Ray initialised)."""
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    # -- search --------------------------------------------------------------------------------------------------

    def trial_finished(self, study: str, state: str, trait_score: float | None = None, feasible: bool = True,
                       reason: str = "error") -> None:
        """One trial told back; ``state`` COMPLETE counts as completed (and may raise the study's best score),
        FAIL as failed (with ``reason``), PRUNED is not counted."""
        if state == "COMPLETE":
            self._metrics["trials_completed"].inc(1, tags={"study": study})
            if trait_score is not None and feasible and trait_score > self._best.get(study, float("-inf")):
                self._best[study] = trait_score
                self._metrics["best_trait_score"].set(trait_score, tags={"study": study})
        elif state == "FAIL":
            self._metrics["trials_failed"].inc(1, tags={"study": study, "reason": reason})

    def on_trial(self, run: Any, row: dict) -> None:
        """The scheduler's ``on_trial(StudyRun, trial row)`` callback: counts the trial, updates the best score."""
        self.trial_finished(str(row.get("study") or run.name), str(row.get("state", "COMPLETE")),
                            row.get("trait_score"), bool(row.get("feasible", True)))

    def queue_depth(self, study: str, depth: int) -> None:
        self._metrics["queue_depth"].set(depth, tags={"study": study})

    # -- actors --------------------------------------------------------------------------------------------------

    def steer_call(self, actor: str, model: str, rows: int, generated_tokens: int, seconds: float) -> None:
        tags = {"actor": actor, "model": model}
        self._metrics["rows_per_steer_call"].observe(rows, tags=tags)
        if generated_tokens:
            self._metrics["generated_tokens"].inc(generated_tokens, tags=tags)
        if seconds > 0:
            self._metrics["tokens_per_second"].set(generated_tokens / seconds, tags=tags)

    def steer_retry(self, actor: str, model: str, reason: str) -> None:
        self._metrics["steer_retries"].inc(1, tags={"actor": actor, "model": model, "reason": reason})

    # -- judge ---------------------------------------------------------------------------------------------------

    def judge_call(self, judge: str, seconds: float, requests: int, errors: int = 0) -> None:
        tags = {"judge": judge}
        if requests:
            self._metrics["judge_requests"].inc(requests, tags=tags)
        if errors:
            self._metrics["judge_errors"].inc(errors, tags=tags)
        self._metrics["judge_latency_seconds"].observe(seconds, tags=tags)


class MeteredJudge:
    """A judge whose ``judge(items, trait)`` calls are counted (requests, errors from its counters) and timed;
    everything else passes through, so the scheduler takes it in place of the judge."""

    def __init__(self, judge: Any, name: str | None = None, metrics: SweepMetrics | None = None) -> None:
        self.inner = judge
        self.name = name or type(judge).__name__
        self.metrics = metrics or SweepMetrics.get()

    def judge(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            result = self.inner.judge(*args, **kwargs)
        except Exception:
            self.metrics.judge_call(self.name, time.perf_counter() - started, 1, errors=1)
            raise
        counters = getattr(result, "counters", None)
        self.metrics.judge_call(self.name, time.perf_counter() - started, int(getattr(counters, "requests", 0)),
                                int(getattr(counters, "failures", 0)) + int(getattr(counters, "rejected", 0)))
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def metrics_endpoints() -> list[str]:
    """``http://ip:port/metrics`` of every alive node's Prometheus export (``MetricsExportPort``, chosen by Ray)."""
    import ray

    return [f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"
            for node in ray.nodes() if node.get("Alive") and node.get("MetricsExportPort")]


def read_metric(body: str, name: str, **tags: str) -> float | None:
    """The value of sample ``name`` whose labels include ``tags`` in a Prometheus text export (summed over the
    processes that report it), or None when absent."""
    total, found = 0.0, False
    for line in body.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        labels, _, value = line.rpartition(" ")
        if all(f'{key}="{val}"' in labels for key, val in tags.items()):
            total += float(value)
            found = True
    return total if found else None
