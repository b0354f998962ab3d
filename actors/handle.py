"""ModelHandle: one way to call a model, whether it is a ``ModelWorker`` in this process or a Ray ``ModelActor``.

The scheduler, the extraction rollouts and the local judge all take "a ModelWorker or a ModelActor handle"; this is
the one place that tells the two apart.

Example:
    >>> handle = ModelHandle.of(worker)                     # doctest: +SKIP
    >>> reply = handle.call("steer", request)               # blocking, either kind  # doctest: +SKIP
    >>> ref = handle.submit("steer", request)  # ObjectRef (Ray) or a finished Future (in process)  # doctest: +SKIP
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any


def _is_remote(target: Any) -> bool:
    """True for a Ray actor handle (an ``ActorHandle``, or anything whose model methods carry ``.remote``)."""
    try:
        from ray.actor import ActorHandle
    except ImportError:  # pragma: no cover - ray is a dependency, but a worker alone must not need it
        ActorHandle = ()
    if ActorHandle and isinstance(target, ActorHandle):
        return True
    return any(hasattr(getattr(target, name, None), "remote") for name in ("steer", "capture", "top_logprobs"))


class ModelHandle:
    """Wraps a ``ModelWorker`` (called in process) or a Ray actor handle (called through ``.remote``).

    ``call`` blocks and returns the result; ``submit`` returns a ``ray.ObjectRef`` for an actor, and for an in-process
    worker a ``concurrent.futures.Future`` that is already done (its exception, if any, is raised by ``result()``).
    ``ModelHandle.of`` is idempotent: wrapping a handle returns it unchanged.
    """

    __slots__ = ("is_remote", "target")

    def __init__(self, target: Any) -> None:
        if isinstance(target, ModelHandle):
            target = target.target
        self.target = target
        self.is_remote = _is_remote(target)

    @classmethod
    def of(cls, target: Any) -> ModelHandle:
        """``target`` wrapped, or ``target`` itself when it already is a ModelHandle."""
        return target if isinstance(target, ModelHandle) else cls(target)

    def _method(self, method: str) -> Any:
        bound = getattr(self.target, method, None)
        if bound is None:
            raise AttributeError(f"{type(self.target).__name__} has no method {method!r}; is this a ModelWorker or "
                                 "a ModelActor handle?")
        return bound

    def submit(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Start ``method(*args)``: an ObjectRef for a Ray actor, a done Future for an in-process worker."""
        bound = self._method(method)
        if self.is_remote:
            return bound.remote(*args, **kwargs)
        future: Future[Any] = Future()
        try:
            future.set_result(bound(*args, **kwargs))
        except Exception as error:
            future.set_exception(error)
        return future

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Run ``method(*args)`` and return its result (blocking for a Ray actor)."""
        bound = self._method(method)
        if self.is_remote:
            import ray

            return ray.get(bound.remote(*args, **kwargs))
        return bound(*args, **kwargs)

    @staticmethod
    def result(pending: Any) -> Any:
        """The result of what :meth:`submit` returned (``ray.get`` for an ObjectRef, ``.result()`` for a Future)."""
        if isinstance(pending, Future):
            return pending.result()
        import ray

        return ray.get(pending)

    def __repr__(self) -> str:
        kind = "Ray actor" if self.is_remote else "in process"
        return f"ModelHandle({type(self.target).__name__}, {kind})"
