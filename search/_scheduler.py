"""Scheduler: asks the studies for trials, packs many trials x questions (and each study's baseline rows) into ONE
``steer`` call per actor, keeps every actor busy (its next call is generating while the last one is judged), routes a
trial to any replica of its target model, and writes responses, then trials, then tells Optuna.

It keeps its own map of in-flight object refs -> (actor, work) and uses ``ray.wait``; a call whose actor died is put
back in the queue as it was (same trials, same numbers) and goes to another replica, so nothing is lost or run twice.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from steersweep.actors.handle import ModelHandle
from steersweep.actors.messages import SteeringTerm, SteerReply, SteerRequest, SteerRow
from steersweep.actors.paths import RunPaths

from ._study import SearchStudy, TrialPlan
from ._tables import BASELINE_TRIAL, write_rows
from ._trial_rows import response_rows, summarize, trial_row

logger = logging.getLogger(__name__)

FAULT_ENV = "STEERSWEEP_FAULT"
"""Fault injection for the crash tests: ``name:count`` SIGKILLs this process at the count-th pass of a named point
(``dispatched``: trials asked, nothing generated; ``responses_written``: a call's responses are on disk, its trial
rows not; ``trials_written``: trial rows on disk, Optuna not told); ``name:count:raise`` raises InjectedFault."""
_fault_counts: dict[str, int] = {}


class InjectedFault(RuntimeError):
    """Raised at a fault point when STEERSWEEP_FAULT asks for ``:raise``."""


def _fault(point: str) -> None:
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    name, count, mode = ([*spec.split(":"), "", ""])[:3]
    if name != point:
        return
    _fault_counts[point] = _fault_counts.get(point, 0) + 1
    if _fault_counts[point] == int(count or 1):
        logger.warning("fault injection: %s at %s #%s", mode or "SIGKILL", point, count or 1)
        if mode == "raise":
            raise InjectedFault(f"injected fault at {point} #{count or 1}")
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class StudyRun:
    """A study plus what its calls need: the vector id, the questions, the trait, the norms, the baseline."""

    study: SearchStudy
    vector_id: str
    questions: list[str]
    trait: Any
    activation_norms: dict[int, float]
    vector_norms: dict[int, float]
    baseline: tuple[float | None, float | None] | None = None
    baseline_pending: bool = False
    deferred: list[tuple[TrialPlan, list[dict], float]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.study.name

    @property
    def model(self) -> str:
        return self.study.spec.target_model

    def terms(self, plan: TrialPlan) -> tuple[SteeringTerm, ...]:
        from ._ratio import perturbation_coefficient

        return tuple(SteeringTerm(self.vector_id, layer, weight * plan.point.sign * perturbation_coefficient(
            plan.point.ratio, self.activation_norms[layer], self.vector_norms[layer]))
            for layer, weight in zip(plan.site.layers, plan.site.weights, strict=True))

    def row_seed(self, trial: int, question: int) -> int:
        return (self.study.spec.seed * 1_000_003 + (trial + 1) * 1_009 + question) % (2**31)


@dataclass
class _Work:
    run: StudyRun
    plan: TrialPlan | None
    """None: the study's baseline rows."""

    @property
    def trial_number(self) -> int:
        return BASELINE_TRIAL if self.plan is None else self.plan.number


@dataclass
class _Call:
    actor: int
    works: list[_Work]
    rows: int
    started: float


@dataclass
class Progress:
    """Counters for the live view: trials planned/done, rows and tokens generated, seconds."""

    planned: int = 0
    done: int = 0
    rows: int = 0
    tokens: int = 0
    calls: int = 0
    generate_seconds: float = 0.0
    """Seconds the actors reported inside ``steer`` (the rest of the wall time is asking, judging and writing)."""
    started: float = field(default_factory=time.perf_counter)

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started


class Scheduler:
    """Runs studies on actors until every study has its configured number of complete trials.

    Args:
        runs: the studies, prepared (norms known, vectors loaded on the actors).
        replicas: target model name -> its actors (ModelWorker or ModelActor handles, or ModelHandles).
        judge: a Judge (``judge.judge(items, trait)``); its cache lives in the run directory.
        run_paths: where the tables go.
        rows_per_call: rows per steer call; None asks each actor (``row_capacity``), else its ``max_batch_size``.
        on_trial: called with (StudyRun, trial row) after each trial is told (the live view).
    """

    def __init__(self, runs: Sequence[StudyRun], replicas: Mapping[str, Sequence[Any]], judge: Any,
                 run_paths: RunPaths, *, max_new_tokens: int = 32, rows_per_call: int | None = None,
                 on_trial: Callable[[StudyRun, dict], None] | None = None,
                 on_call: Callable[[Progress], None] | None = None) -> None:
        self.runs = list(runs)
        self.actors: list[tuple[str, ModelHandle]] = [(model, ModelHandle.of(h)) for model, hs in replicas.items()
                                                      for h in hs]
        self.alive = [True] * len(self.actors)
        self.judge = judge
        self.paths = run_paths
        self.max_new_tokens = max_new_tokens
        self.rows_per_call = rows_per_call
        self.on_trial = on_trial
        self.on_call = on_call
        self.requeued: dict[str, deque[_Work]] = {model: deque() for model, _ in self.actors}
        self.inflight: dict[Any, _Call] = {}
        self.progress = Progress(planned=sum(r.study.spec.n_trials for r in self.runs))
        self.calls_per_actor = [0] * len(self.actors)
        self._capacity: dict[int, int] = {}
        self._turn = 0
        _fault_counts.clear()
        missing = sorted({r.model for r in self.runs} - set(self.requeued))
        if missing:
            raise ValueError(f"replicas: no actor for target model(s) {missing}; add one per target model")

    # ------------------------------------------------------------------------------------------- packing
    def capacity(self, index: int) -> int:
        """Rows one call to actor ``index`` may hold (asked once per actor)."""
        if self.rows_per_call is not None:
            return self.rows_per_call
        if index not in self._capacity:
            handle = self.actors[index][1]
            prompt_tokens = max(16, max(len(q) for r in self.runs for q in r.questions) // 2 + 16)
            if hasattr(handle.target, "row_capacity"):
                rows = int(handle.call("row_capacity", prompt_tokens, self.max_new_tokens))
            else:  # an actor without row_capacity: its own batch size
                rows = int(getattr(handle.target, "max_batch_size", 64)) if not handle.is_remote else 64
            self._capacity[index] = max(1, rows)
        return self._capacity[index]

    def _pack(self, index: int) -> list[_Work]:
        model = self.actors[index][0]
        budget = self.capacity(index)
        works: list[_Work] = []
        used = 0
        queue = self.requeued[model]
        while queue and (not works or used + len(queue[0].run.questions) <= budget):
            work = queue.popleft()
            works.append(work)
            used += len(work.run.questions)
        runs = [r for r in self.runs if r.model == model]
        for run in runs:
            if run.baseline is None and not run.baseline_pending and (not works or used + len(run.questions)
                                                                      <= budget):
                run.baseline_pending = True
                works.append(_Work(run, None))
                used += len(run.questions)
        asking = [r for r in runs if not r.study.done]
        while asking:
            self._turn = (self._turn + 1) % len(asking)
            run = asking[self._turn]
            if works and used + len(run.questions) > budget:
                asking.remove(run)
                continue
            plans = run.study.ask(1)
            if not plans:
                asking.remove(run)
                continue
            works.append(_Work(run, plans[0]))
            used += len(run.questions)
        return works

    def _dispatch(self, index: int) -> bool:
        works = self._pack(index)
        if not works:
            return False
        rows = [SteerRow(question, () if w.plan is None else w.run.terms(w.plan),
                         seed=w.run.row_seed(w.trial_number, q), tag=f"{w.run.name}/{w.trial_number}/{q}")
                for w in works for q, question in enumerate(w.run.questions)]
        request = SteerRequest(rows=tuple(rows), max_new_tokens=self.max_new_tokens)
        _fault("dispatched")
        ref = self.actors[index][1].submit("steer", request)
        self.inflight[ref] = _Call(index, works, len(rows), time.perf_counter())
        self.calls_per_actor[index] += 1
        return True

    # ------------------------------------------------------------------------------------------- main loop
    def run(self) -> Progress:
        """Until every study is done; returns the counters."""
        while True:
            for index in range(len(self.actors)):
                if self.alive[index] and not any(c.actor == index for c in self.inflight.values()):
                    self._dispatch(index)
            if not self.inflight:
                unfinished = [r.name for r in self.runs if not r.study.done]
                if unfinished:
                    raise RuntimeError(f"studies {unfinished} are not done but nothing can be asked or dispatched; "
                                       "is every replica of their target model dead?")
                return self.progress
            _ref, call, reply, error = self._wait_one()
            if error is not None:
                self._actor_died(call, error)
                continue
            if self.alive[call.actor] and self.actors[call.actor][1].is_remote:
                self._dispatch(call.actor)  # the actor generates the next batch while this one is judged
            self._finish(call, reply)

    def _wait_one(self) -> tuple[Any, _Call, SteerReply | None, BaseException | None]:
        ready = next((ref for ref in self.inflight if isinstance(ref, Future)), None)
        if ready is None:
            import ray

            done, _ = ray.wait(list(self.inflight), num_returns=1)
            ready = done[0]
        call = self.inflight.pop(ready)
        try:
            return ready, call, ModelHandle.result(ready), None
        except Exception as error:
            if _is_actor_death(error):
                return ready, call, None, error
            raise

    def _actor_died(self, call: _Call, error: BaseException) -> None:
        model = self.actors[call.actor][0]
        self.alive[call.actor] = False
        for work in call.works:
            if work.plan is None:
                work.run.baseline_pending = False
            else:
                self.requeued[model].append(work)
        replicas = [i for i, (m, _) in enumerate(self.actors) if m == model and self.alive[i]]
        logger.warning("actor %d (%s) died (%s); %d trial(s) of its call go to %s", call.actor, model,
                       type(error).__name__, sum(w.plan is not None for w in call.works),
                       f"replica(s) {replicas}" if replicas else "no replica: add one with add_replica")

    def add_replica(self, model: str, handle: Any) -> int:
        """Another actor for ``model`` (e.g. a restarted one); it takes work at the next dispatch."""
        self.actors.append((model, ModelHandle.of(handle)))
        self.alive.append(True)
        self.calls_per_actor.append(0)
        self.requeued.setdefault(model, deque())
        return len(self.actors) - 1

    # ------------------------------------------------------------------------------------------- results
    def _finish(self, call: _Call, reply: SteerReply) -> None:
        texts = getattr(reply, "raw_texts", None) or reply.texts
        offset = 0
        by_run: dict[str, list[tuple[_Work, slice]]] = {}
        for work in call.works:
            n = len(work.run.questions)
            by_run.setdefault(work.run.name, []).append((work, slice(offset, offset + n)))
            offset += n
        seconds = time.perf_counter() - call.started
        self.progress.calls += 1
        self.progress.generate_seconds += float(getattr(reply, "seconds", 0.0))
        self.progress.rows += call.rows
        self.progress.tokens += int(sum(reply.response_token_counts))
        for parts in by_run.values():
            run = parts[0][0].run
            responses = response_rows(run, self.judge, [(w.trial_number, s) for w, s in parts], reply, texts)
            write_rows(self.paths, "responses", run.name, [r for rows in responses for r in rows])
            _fault("responses_written")
            finished = []
            for (work, _), rows in zip(parts, responses, strict=True):
                if work.plan is None:
                    stats = summarize(rows)
                    run.baseline = (stats["trait_score"], stats["coherence"])
                    run.baseline_pending = False
                else:
                    finished.append((work.plan, rows, seconds))
            run.deferred.extend(finished)
            self.flush(run)
        if self.on_call is not None:
            self.on_call(self.progress)

    def flush(self, run: StudyRun) -> None:
        """Write the trial rows held for ``run`` (they wait for its baseline), then tell Optuna."""
        if run.baseline is None or not run.deferred:
            return
        held, run.deferred = run.deferred, []
        rows = [trial_row(run, plan, responses, seconds) for plan, responses, seconds in held]
        write_rows(self.paths, "trials", run.name, rows)
        _fault("trials_written")
        for (plan, _, _), row in zip(held, rows, strict=True):
            state = run.study.tell(plan, row["trait_score"], row["coherence"])
            if state.name == "COMPLETE":
                self.progress.done += 1
            if self.on_trial is not None:
                self.on_trial(run, row)


def _is_actor_death(error: BaseException) -> bool:
    try:
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError
    except ImportError:  # pragma: no cover
        return False
    return isinstance(error, RayActorError | ActorDiedError | ActorUnavailableError)

