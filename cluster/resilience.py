"""A model actor that survives: CUDA OOM halves the batch and retries; a restarted actor gets its vectors back.

Ray restarts a dead actor (``max_restarts``) but not its state: the restarted process has no steering vectors and
the call that was running is lost. :class:`ResilientModel` remembers the vectors it loaded, waits for the restart,
loads them again and runs the lost call once more, so every request is answered exactly once. A CUDA out-of-memory
error on ``steer`` splits the rows in two halves (seeds pinned, so the texts equal an unsplit call) until a half
fits or a single row still does not.

Example:
    >>> model = ResilientModel(actor, "steersweep/llama-sft/0", "llama-sft")  # doctest: +SKIP
    >>> model.load_vectors({"optimism": vectors})                            # doctest: +SKIP
    >>> model.steer(request).texts                                           # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ray.exceptions import RayActorError

from steersweep.actors import SteerReply, SteerRequest
from steersweep.actors.handle import ModelHandle

logger = logging.getLogger(__name__)

_OOM_MARKERS = ("CUDA out of memory", "OutOfMemoryError", "out of memory")


class ActorLostError(RayActorError):
    """The actor died and Ray will not restart it (restarts used up, or its model no longer loads).

    A ``RayActorError``, so the scheduler treats it as a dead actor: its trials go to another replica.
    """

    def __init__(self, message: str) -> None:
        super().__init__(error_msg=message)


def is_out_of_memory(error: BaseException) -> bool:
    """True for a CUDA OOM raised inside the actor (Ray wraps it in a RayTaskError that keeps the message)."""
    text = f"{type(error).__name__}: {error}"
    cause = getattr(error, "cause", None)
    if cause is not None:
        text += f" {type(cause).__name__}: {cause}"
    return any(marker in text for marker in _OOM_MARKERS)


def actor_state(actor: Any) -> str:
    """The actor's state in the GCS: ALIVE, RESTARTING, DEAD, PENDING_CREATION ..."""
    from ray._private import state

    return str(state.actors(actor._actor_id.hex()).get("State", "UNKNOWN"))


def merge_replies(parts: list[SteerReply]) -> SteerReply:
    """Concatenate the replies of consecutive row ranges (tuple fields concatenate, ``seconds`` add up)."""
    values = {}
    for field in dataclasses.fields(parts[0]):
        first = getattr(parts[0], field.name)
        if isinstance(first, tuple):
            values[field.name] = tuple(item for part in parts for item in getattr(part, field.name))
        elif isinstance(first, int | float):
            values[field.name] = sum(getattr(part, field.name) for part in parts)
        else:
            values[field.name] = first
    return type(parts[0])(**values)


def pin_seeds(request: SteerRequest) -> SteerRequest:
    """Every row with its own seed (``request.seed + index``, as the worker would give it), so a split is exact."""
    rows = tuple(row if row.seed is not None else dataclasses.replace(row, seed=request.seed + i)
                 for i, row in enumerate(request.rows))
    return dataclasses.replace(request, rows=rows)


class ResilientModel(ModelHandle):
    """One placed ModelActor behind OOM halving, restart recovery and metrics; a ``ModelHandle`` whose ``submit``
    returns a Future (the scheduler takes it as it is: ``ModelHandle.of`` keeps it).

    Args:
        actor: the Ray actor handle (started with ``max_restarts`` > 0 for restarts to happen).
        name: the actor's name, e.g. ``steersweep/llama-sft/0`` (metrics tag, log lines).
        model: the model name (metrics tag).
        restart_timeout_s: how long to wait for a restarted actor to answer ``ping``.
        metrics: a :class:`~steersweep.cluster.metrics.SweepMetrics` or None.
    """

    def __init__(self, actor: Any, name: str, model: str, restart_timeout_s: float = 600.0,
                 metrics: Any = None) -> None:
        super().__init__(actor)  # target = the actor handle, is_remote = True
        self.actor = actor
        self.name = name
        self.model = model
        self.restart_timeout_s = restart_timeout_s
        self.metrics = metrics
        self.restarts = 0
        self.oom_splits = 0
        self._vectors: dict[str, Any] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)  # one call at a time, like the actor

    # -- the ModelHandle contract ------------------------------------------------------------------------------

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if kwargs:
            raise TypeError(f"{self.name}: {method} takes positional arguments through ResilientModel")
        if method == "steer":
            return self.steer(*args)
        if method == "load_vectors":
            return self.load_vectors(*args)
        return self._run(method, *args)

    def submit(self, method: str, *args: Any, **kwargs: Any) -> Future:
        return self._pool.submit(self.call, method, *args, **kwargs)

    def __repr__(self) -> str:
        return f"ResilientModel({self.name}, restarts={self.restarts}, oom_splits={self.oom_splits})"

    # -- calls -------------------------------------------------------------------------------------------------

    def load_vectors(self, vectors: Mapping[str, Any]) -> list[str]:
        self._vectors.update(vectors)
        return self._run("load_vectors", dict(vectors))

    def steer(self, request: SteerRequest) -> SteerReply:
        request = pin_seeds(request)
        started = time.perf_counter()
        reply = self._steer_split(request)
        if self.metrics is not None:
            self.metrics.steer_call(self.name, self.model, len(request.rows), sum(reply.response_token_counts),
                                    reply.seconds or time.perf_counter() - started)
        return reply

    def _steer_split(self, request: SteerRequest) -> SteerReply:
        try:
            return self._run("steer", request)
        except Exception as error:
            if not is_out_of_memory(error) or len(request.rows) == 1:
                raise
        self.oom_splits += 1
        half = len(request.rows) // 2
        logger.warning("%s: CUDA out of memory on %d rows; retrying as %d + %d rows", self.name,
                       len(request.rows), half, len(request.rows) - half)
        if self.metrics is not None:
            self.metrics.steer_retry(self.name, self.model, "oom")
        parts = [self._steer_split(dataclasses.replace(request, rows=rows))
                 for rows in (request.rows[:half], request.rows[half:])]
        return merge_replies(parts)

    def _run(self, method: str, *args: Any) -> Any:
        """``actor.method(*args)``; when the actor died and Ray restarts it, restore its vectors and run it again."""
        import ray

        while True:
            try:
                return ray.get(getattr(self.actor, method).remote(*args))
            except (ray.exceptions.ActorUnavailableError, ray.exceptions.RayActorError) as error:
                if isinstance(error, ray.exceptions.RayTaskError):
                    raise
                logger.warning("%s: actor lost during %s (%s); waiting for Ray to restart it", self.name, method,
                               type(error).__name__)
                self._await_restart(error)
                self.restarts += 1
                if self.metrics is not None:
                    self.metrics.steer_retry(self.name, self.model, "restart")

    def _await_restart(self, cause: BaseException) -> None:
        """Block until the restarted actor answers ``ping`` and holds its vectors again; raise when it is gone."""
        import ray

        deadline = time.monotonic() + self.restart_timeout_s
        while True:
            if actor_state(self.actor) == "DEAD":
                raise ActorLostError(f"{self.name}: actor died and Ray will not restart it ({cause})") from cause
            try:
                ray.get(self.actor.ping.remote(), timeout=30)
                break
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as error:
                if time.monotonic() > deadline:
                    raise ActorLostError(f"{self.name}: not back {self.restart_timeout_s:g} s after a crash") from error
                time.sleep(0.5)
        if self._vectors:
            ray.get(self.actor.load_vectors.remote(dict(self._vectors)))

    def close(self) -> None:
        self._pool.shutdown(wait=False)


