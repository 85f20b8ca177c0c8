"""The shared media pump and the writer thread: fairness to the event loop, isolation of failures, order."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from media.pump import SLICE, MediaPump
from media.write_queue import WriteQueue


class Busy:
    """A session whose tick costs ``cost`` seconds of CPU."""

    def __init__(self, cost: float) -> None:
        self.cost = cost
        self.ticks = 0

    def service(self, now: float) -> None:
        end = time.perf_counter() + self.cost
        while time.perf_counter() < end:
            pass
        self.ticks += 1


class Broken:
    def service(self, now: float) -> None:
        raise ValueError("corrupt state")


async def test_a_heavy_tick_yields_to_the_event_loop_every_slice() -> None:
    pump = MediaPump(tick=0.15)
    sessions = [Busy(0.002) for _ in range(60)]  # 120 ms of work per tick
    for session in sessions:
        pump.add(session)
    gaps: list[float] = []
    last = time.perf_counter()
    end = last + 0.7
    while time.perf_counter() < end:
        await asyncio.sleep(0)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
    for session in sessions:
        pump.discard(session)
    assert all(s.ticks >= 2 for s in sessions)
    # Never the whole 120 ms at once: a slice, one session's 2 ms past it, and room for a busy machine.
    assert max(gaps) < SLICE + 0.03
    assert sorted(gaps)[len(gaps) // 2] < SLICE + 0.003
    assert pump.stats.busy_seconds >= 0.3
    assert pump.stats.max_cycle >= 0.12


async def test_a_failing_session_is_dropped_and_logged_others_go_on(caplog: pytest.LogCaptureFixture) -> None:
    pump = MediaPump(tick=0.02)
    good, bad = Busy(0.0), Broken()
    pump.add(bad)
    pump.add(good)
    await asyncio.sleep(0.15)
    assert good.ticks >= 4
    assert len(pump) == 1
    assert "servicing a media session failed" in caplog.text
    pump.discard(good)


async def test_the_pump_stops_when_idle_and_restarts_with_a_new_session() -> None:
    pump = MediaPump.shared(0.01)
    assert MediaPump.shared(0.01) is pump
    first = Busy(0.0)
    pump.add(first)
    await asyncio.sleep(0.05)
    pump.discard(first)
    await asyncio.sleep(0.05)
    ticks = first.ticks
    await asyncio.sleep(0.05)
    assert first.ticks == ticks  # no longer serviced
    second = Busy(0.0)
    pump.add(second)
    await asyncio.sleep(0.05)
    assert second.ticks >= 2
    pump.discard(second)


async def test_writes_run_in_submission_order_on_one_thread() -> None:
    queue = WriteQueue()
    seen: list[tuple[int, str]] = []
    for i in range(200):
        queue.submit(lambda i=i: seen.append((i, threading.current_thread().name)))
    await queue.run(lambda: None)
    assert [i for i, _ in seen] == list(range(200))
    assert {name for _, name in seen} == {"hangtar-writer"}
    assert queue.pending == 0


async def test_a_waited_job_reports_its_exception_and_the_queue_goes_on() -> None:
    queue = WriteQueue()

    def fail() -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        await queue.run(fail)
    done: list[int] = []
    await queue.run(lambda: done.append(1))
    assert done == [1]
