"""Pauses of Python's garbage collector, as a metric and, when long, a log line.

A collection runs on whichever thread allocated last and holds the GIL throughout, so every Python thread waits
for it, the event loop included: with a thousand calls' objects alive, a full (generation 2) collection is the
kind of stall that shows as event-loop lag and late SIP answers. ``hangtar_gc_pause_seconds{generation}`` tells
those pauses apart from the rest of the loop's lag.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram

__all__ = ["GcPauses"]

log = logging.getLogger(__name__)

_SLOW = 0.05  # seconds: a pause this long is logged


class GcPauses:
    """Times every collection through ``gc.callbacks``; :meth:`install` once per process."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._seconds = Histogram(
            "hangtar_gc_pause_seconds",
            "Pauses of the Python garbage collector, by generation (every thread waits during one)",
            ["generation"],
            buckets=(0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
            registry=registry,
        )
        self._children = [self._seconds.labels(str(generation)) for generation in range(3)]
        self._started = 0.0
        self._planned = False

    @contextlib.contextmanager
    def planned(self) -> Iterator[None]:
        """Collections made meanwhile were asked for (the idle reclaim): a long one is logged at INFO only."""
        self._planned = True
        try:
            yield
        finally:
            self._planned = False

    def install(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def uninstall(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        seconds = time.perf_counter() - self._started
        generation = int(info.get("generation", 0))
        self._children[min(max(generation, 0), 2)].observe(seconds)
        if seconds >= _SLOW:
            log.log(
                logging.INFO if self._planned else logging.WARNING,
                "garbage collection of generation %d took %.0f ms (%d objects collected)",
                generation,
                seconds * 1000,
                int(info.get("collected", 0)),
            )
