"""The blocking entry point of the judges: their async work on a private event loop thread, safe to interrupt.

On Ctrl-C (or any exception raised in the calling thread while it waits) the runner asks the work to stop taking
new items, waits a bounded time for the requests already on the wire (answers the endpoint was paid for), then
cancels what is left; the coroutine's own ``finally`` flushes the cache. Only then is the exception re-raised.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

_POLL_S = 0.1  # the calling thread wakes this often, so Ctrl-C is seen even while it waits on the loop thread
_CANCEL_WAIT_S = 10.0


class SyncRunner:
    """Runs coroutines on one background event loop thread and waits for them interruptibly.

    Example:
        >>> runner = SyncRunner("example")
        >>> async def two() -> int:
        ...     return 2
        >>> runner.run(two(), request_stop=lambda: None)
        2
        >>> runner.close()
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    def run(
        self,
        coroutine: Coroutine[Any, Any, _T],
        *,
        request_stop: Callable[[], None],
        drain_timeout_s: float = 30.0,
    ) -> _T:
        """Run ``coroutine`` to its end and return its result; on an interrupt drain, cancel, then re-raise.

        Args:
            request_stop: called (in this thread) on an interrupt: the work must stop starting new requests.
            drain_timeout_s: how long requests already sent may take to come back before they are cancelled.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coroutine.close()
            raise RuntimeError(
                "the blocking judge API was called inside a running event loop; use `await judge.ajudge(...)`"
            )
        loop = self._ensure_loop()
        finished = threading.Event()

        async def tracked() -> _T:
            try:
                return await coroutine
            finally:
                finished.set()

        future = asyncio.run_coroutine_threadsafe(tracked(), loop)
        try:
            while not finished.is_set():
                finished.wait(_POLL_S)
        except BaseException:  # KeyboardInterrupt, SystemExit, an async exception: keep what was paid for
            self._drain(future, finished, request_stop, drain_timeout_s)
            raise
        return future.result()

    def _drain(
        self,
        future: concurrent.futures.Future[Any],
        finished: threading.Event,
        request_stop: Callable[[], None],
        drain_timeout_s: float,
    ) -> None:
        assert self._loop is not None
        request_stop()
        logger.warning(
            "judge %s: interrupted; waiting up to %.0f s for the requests already sent, then saving the cache "
            "(interrupt again to drop them)", self.name, drain_timeout_s,
        )
        try:
            deadline = time.monotonic() + drain_timeout_s
            while not finished.is_set() and time.monotonic() < deadline:
                finished.wait(_POLL_S)
        except BaseException:  # a second interrupt: stop waiting for the wire, still let the cache flush
            pass
        if not finished.is_set():
            self._loop.call_soon_threadsafe(future.cancel)
            # the coroutine's finally blocks (the cache flush) run on cancellation; give them time to finish
            deadline = time.monotonic() + _CANCEL_WAIT_S
            while not finished.is_set() and time.monotonic() < deadline:
                try:
                    finished.wait(_POLL_S)
                except BaseException:  # keep waiting for the flush through further interrupts
                    continue
        if future.done() and not future.cancelled() and future.exception() is not None:
            logger.debug("judge %s: the interrupted work ended with %r", self.name, future.exception())

    def call(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Run a short coroutine (start-up, close) to its end; interrupts are not drained."""
        return self.run(coroutine, request_stop=lambda: None, drain_timeout_s=0.0)

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name=f"judge-{self.name}", daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
        return self._loop

    def close(self) -> None:
        """Stop the loop thread (a later ``run`` starts a new one)."""
        if self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(timeout=10)
        self._loop.close()
        self._loop, self._thread = None, None
