"""One periodic task that services every media session of an event loop (asyncio glue).

A task per call would wake the loop thousands of times a second at full load. The pump wakes once per tick,
lets each session drain its sockets into its recorder (and hand finished frames to the writer), and yields
to the event loop every few milliseconds of work, so SIP keeps being answered however many calls run.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import ClassVar, Final, Protocol

__all__ = ["MediaPump", "PumpStats", "Serviced"]

log = logging.getLogger(__name__)

#: Work done between two yields to the event loop, seconds. Bounds the loop lag the media path causes.
SLICE: Final = 0.004


class Serviced(Protocol):
    def service(self, now: float) -> None:
        """Drain, record and maybe write; ``now`` is the loop's monotonic time."""


class PumpStats:
    """What the pump did, for metrics: cycles, the busy time of the last and the longest cycle."""

    __slots__ = ("busy_seconds", "cycles", "last_cycle", "max_cycle", "overruns")

    def __init__(self) -> None:
        self.cycles = 0
        self.busy_seconds = 0.0  # CPU-bound time spent servicing sessions (wall clock, yields excluded)
        self.last_cycle = 0.0  # wall time from the start to the end of the last cycle, yields included
        self.max_cycle = 0.0
        self.overruns = 0  # cycles that took longer than a tick: the media path is falling behind


class MediaPump:
    """Use :meth:`shared`; sessions :meth:`add` themselves while they record."""

    _pumps: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, MediaPump]]] = (
        weakref.WeakKeyDictionary()
    )

    __slots__ = ("_sessions", "_task", "stats", "tick")

    def __init__(self, tick: float) -> None:
        if tick <= 0:
            raise ValueError("tick must be positive")
        self.tick = tick
        self._sessions: dict[Serviced, None] = {}  # insertion-ordered set
        self._task: asyncio.Task[None] | None = None
        self.stats = PumpStats()

    @classmethod
    def shared(cls, tick: float) -> MediaPump:
        """The running loop's pump for ``tick``."""
        pumps = cls._pumps.setdefault(asyncio.get_running_loop(), {})
        pump = pumps.get(tick)
        if pump is None:
            pump = pumps[tick] = cls(tick)
        return pump

    @classmethod
    def all_stats(cls) -> list[PumpStats]:
        """Statistics of every pump of the process (callable from any thread)."""
        return [pump.stats for pumps in list(cls._pumps.values()) for pump in list(pumps.values())]

    def __len__(self) -> int:
        return len(self._sessions)

    def add(self, session: Serviced) -> None:
        self._sessions[session] = None
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="media-pump")

    def discard(self, session: Serviced) -> None:
        self._sessions.pop(session, None)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        stats = self.stats
        next_tick = loop.time()
        while self._sessions:
            next_tick += self.tick
            delay = next_tick - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                stats.overruns += 1
                next_tick = loop.time()
            began = time.perf_counter()
            busy_from = await self._service_all(loop, began)
            ended = time.perf_counter()
            stats.busy_seconds += ended - busy_from
            stats.cycles += 1
            stats.last_cycle = ended - began
            stats.max_cycle = max(stats.max_cycle, stats.last_cycle)

    async def _service_all(self, loop: asyncio.AbstractEventLoop, began: float) -> float:
        """One cycle over the sessions, yielding every :data:`SLICE`; returns when the last busy stretch began.
        A method of its own so that nothing of the last session serviced stays referenced while the pump waits
        for the next tick: a closed call's state goes by reference counting alone (siprec_server.gc_policy)."""
        stats = self.stats
        slice_end = began + SLICE
        busy_from = began
        for session in list(self._sessions):
            if session not in self._sessions:
                continue  # closed while the pump yielded
            try:
                session.service(loop.time())
            except Exception:
                log.exception("servicing a media session failed; it stops recording")
                self.discard(session)
            now = time.perf_counter()
            if now >= slice_end:
                stats.busy_seconds += now - busy_from
                await asyncio.sleep(0)
                busy_from = time.perf_counter()
                slice_end = busy_from + SLICE
        return busy_from
