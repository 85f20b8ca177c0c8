"""One thread that writes every recording's audio, in submission order (asyncio glue).

Encoding FLAC and writing it is the slow part of a tick; libFLAC runs without the GIL, so a thread keeps that
work off the event loop. A single queue replaces one executor hand-off per write (thousands per second at full
load); submission order per file is the queue's order, which keeps each file's frames in sequence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import ClassVar, Final

__all__ = ["WriteQueue"]

log = logging.getLogger(__name__)

_Job = tuple[Callable[[], None], asyncio.AbstractEventLoop | None, "asyncio.Future[None] | None"]
_STOP: Final = None
WRITER_NICE: Final = 10  # CFS weight 110 against the loop's 1024 while both want the core


class WriteQueue:
    """Runs submitted jobs one after another on a daemon thread started on first use."""

    __slots__ = ("_jobs", "_lock", "_thread", "pending")

    _shared: ClassVar[WriteQueue | None] = None

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.pending = 0  # jobs submitted and not finished: the write backlog

    @classmethod
    def shared(cls) -> WriteQueue:
        """The process's queue."""
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` on the writer thread; it reports its own errors."""
        self._put((job, None, None))

    def run(self, job: Callable[[], None]) -> asyncio.Future[None]:
        """Run ``job`` after everything submitted before it; the future has its result or exception."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._put((job, loop, future))
        return future

    def _put(self, job: _Job) -> None:
        with self._lock:
            self.pending += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="hangtar-writer", daemon=True)
                self._thread.start()
        self._jobs.put(job)

    def _work(self) -> None:
        _yield_to_the_loop()
        while (job := self._jobs.get()) is not _STOP:
            function, loop, future = job
            # Neither the job nor its function stays referenced once it ran: they may close over a finished
            # call's state, which must go by reference counting as soon as the waiting coroutine resumes.
            del job
            error = self._call(function, reported=future is not None)
            del function
            if loop is not None and future is not None:
                with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                    loop.call_soon_threadsafe(_settle, future, error)
            del loop, future, error

    def _call(self, function: Callable[[], None], *, reported: bool) -> BaseException | None:
        try:
            function()
        except BaseException as exc:  # handed to the waiting coroutine, or logged here
            if not reported:
                log.exception("a background write failed")
            return exc
        finally:
            with self._lock:
                self.pending -= 1
        return None


def _yield_to_the_loop() -> None:
    """Run this thread at a lower CPU priority than the event loop's: when a core is saturated the loop (SIP,
    the media pump) runs first and audio writes queue, counted by the backlog, instead of SIP answers waiting
    behind FLAC encoding. Linux applies a nice value to the calling thread alone."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WRITER_NICE)
    except OSError as exc:  # a platform or sandbox that refuses it: the thread runs at the process's priority
        log.debug("the writer thread keeps the process's priority: %s", exc)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
