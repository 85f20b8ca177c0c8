"""Keeping calls' objects out of the garbage collector's full collections.

CPython's full (generation 2) collection walks every tracked object while every thread waits. At 1,000 calls
that took 90-250 ms (``hangtar_gc_pause_seconds``) and collected nothing: a call's objects live for minutes
and are freed by reference counting when it ends. So, while calls are up, every ``freeze_interval`` the server
runs a young collection (generations 0 and 1: a few milliseconds) and freezes what survived (``gc.freeze``,
which only relinks a list): the automatic collections then see only what was made since.

Frozen objects are still freed by reference counting. Only reference cycles among them wait, for a
*reclaim*: unfreeze, one full collection, freeze again. That pause is as long as the full collections it
replaces, so it comes when no call is up (at most every ``idle_reclaim`` seconds) and, on a node that is never
idle, every ``reclaim_interval``. Per-call state is kept free of cycles (:mod:`media.weak_method`), so little
waits; ``hangtar_gc_reclaimed_objects_total`` counts what did.

:class:`GcSchedule` decides (fed the time and the calls up); :class:`GcPolicy` acts on the interpreter.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

from .gc_pauses import GcPauses

__all__ = ["GcAction", "GcPolicy", "GcSchedule"]

log = logging.getLogger(__name__)


class GcAction(enum.Enum):
    NOTHING = "nothing"
    FREEZE = "freeze"  # young collection, then freeze the survivors
    RECLAIM_IDLE = "idle"  # unfreeze, full collection, freeze: no call is up
    RECLAIM_DUE = "due"  # the same, because reclaim_interval has passed


@dataclass
class GcSchedule:
    """When to freeze and when to reclaim; the times are monotonic seconds."""

    freeze_interval: float
    idle_reclaim: float
    reclaim_interval: float
    last_reclaim: float
    frozen_since_reclaim: bool = False

    def next(self, now: float, active_calls: int) -> GcAction:
        """The action for a tick at ``now``, with ``active_calls`` up; a reclaim is taken as done."""
        if self.frozen_since_reclaim:
            since = now - self.last_reclaim
            if active_calls == 0 and since >= self.idle_reclaim:
                return self._reclaimed(now, GcAction.RECLAIM_IDLE)
            if since >= self.reclaim_interval:
                return self._reclaimed(now, GcAction.RECLAIM_DUE)
        if active_calls == 0:
            return GcAction.NOTHING  # what is made between calls is short-lived: the collector's as usual
        self.frozen_since_reclaim = True
        return GcAction.FREEZE

    def _reclaimed(self, now: float, action: GcAction) -> GcAction:
        self.last_reclaim = now
        self.frozen_since_reclaim = False
        return action


class GcPolicy:
    """Applies a :class:`GcSchedule` every ``freeze_interval`` seconds (:meth:`run`); start-up objects are
    frozen once by :meth:`freeze_startup`."""

    def __init__(
        self,
        registry: CollectorRegistry,
        active_calls: Callable[[], int],
        *,
        freeze_interval: float,
        idle_reclaim: float,
        reclaim_interval: float,
        pauses: GcPauses | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._active_calls = active_calls
        self._pauses = pauses  # told that a reclaim's long pause was asked for
        self._clock = clock
        self.schedule = GcSchedule(freeze_interval, idle_reclaim, reclaim_interval, last_reclaim=clock())
        self._reclaims = Counter(
            "hangtar_gc_reclaims_total",
            "Full collections of frozen objects, by reason (idle: no call up; due: reclaim_interval passed)",
            ["reason"],
            registry=registry,
        )
        for action in (GcAction.RECLAIM_IDLE, GcAction.RECLAIM_DUE):
            self._reclaims.labels(action.value)
        self._reclaimed = Counter(
            "hangtar_gc_reclaimed_objects_total",
            "Objects a reclaim found unreachable: reference cycles that outlived a freeze",
            registry=registry,
        )

    @staticmethod
    def freeze_startup() -> None:
        """Everything built so far lives as long as the process."""
        gc.freeze()

    def tick(self) -> GcAction:
        action = self.schedule.next(self._clock(), self._active_calls())
        if action is GcAction.FREEZE:
            gc.collect(1)
            gc.freeze()
        elif action in (GcAction.RECLAIM_IDLE, GcAction.RECLAIM_DUE):
            started = time.perf_counter()
            with self._pauses.planned() if self._pauses is not None else contextlib.nullcontext():
                gc.unfreeze()
                found = gc.collect()
                gc.freeze()
            self._reclaims.labels(action.value).inc()
            self._reclaimed.inc(found)
            log.info(
                "garbage collector: reclaim (%s) found %d unreachable objects in %.0f ms",
                action.value,
                found,
                (time.perf_counter() - started) * 1000,
            )
        return action

    async def run(self) -> None:
        if self.schedule.freeze_interval <= 0:
            return  # off: CPython's own schedule, over everything but the start-up objects
        while True:
            await asyncio.sleep(self.schedule.freeze_interval)
            self.tick()
