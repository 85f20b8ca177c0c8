"""Watching a run: the server's and its database's CPU and memory (psutil), SIP OPTIONS round trips from a
socket of their own every 0.5 s, the server's ``/metrics`` every 2 s, and the generator's own counters.

Everything is kept as time series (monotonic times); the runner cuts them into steps. CPU is reported as a
percentage of one core over each one-second interval. Processes are found afresh at every reading (database
backends come and go); one that exits keeps the CPU time it was last seen with.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import psutil  # type: ignore[import-untyped,unused-ignore]

from .options_probe import OptionsProbe
from .prometheus import MetricsSnapshot, fetch_metrics
from .results import Progress

__all__ = ["Monitor", "ProcessMeter", "Sample"]

SAMPLE_INTERVAL = 1.0
OPTIONS_INTERVAL = 0.5
SCRAPE_INTERVAL = 2.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    at: float
    server_cpu: float | None  # % of one core over the last interval
    server_rss: int | None  # bytes
    postgres_cpu: float | None
    postgres_rss: int | None
    generator_cpu: float | None
    generator_late_ms: float  # the latest any generator loop ran, by its last reports
    runner_cpu: float | None  # this process: the monitor and the runner, on the generator's CPUs
    generator_active: int  # calls answered and not ended, as the generator processes last reported
    rtp_sent: int  # by the generator processes so far


class ProcessMeter:
    """Cumulative CPU seconds and current resident memory of a group of processes."""

    def __init__(self, roots: Callable[[], Iterable[int]], *, children: bool = True) -> None:
        self._roots = roots
        self._children = children
        self._cpu: dict[int, float] = {}  # pid → CPU seconds when last seen
        self._procs: dict[int, psutil.Process] = {}

    def read(self) -> tuple[float, int]:
        rss = 0
        for proc in self._members():
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    memory = proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            self._cpu[proc.pid] = times.user + times.system
            rss += memory
        return sum(self._cpu.values()), rss

    def cpu_seconds(self) -> float:
        return self.read()[0]

    def _members(self) -> list[psutil.Process]:
        found: list[psutil.Process] = []
        for pid in self._roots():
            proc = self._process(pid)
            if proc is None:
                continue
            found.append(proc)
            if self._children:
                with contextlib.suppress(psutil.Error):
                    found += [self._procs.setdefault(c.pid, c) for c in proc.children(recursive=True)]
        return found

    def _process(self, pid: int) -> psutil.Process | None:
        proc = self._procs.get(pid)
        if proc is None:
            try:
                proc = self._procs[pid] = psutil.Process(pid)
            except psutil.Error:
                return None
        return proc


class Monitor:
    def __init__(
        self,
        *,
        server: ProcessMeter | None,
        postgres: ProcessMeter | None,
        options: OptionsProbe | None,
        metrics_at: tuple[str, int] | None,
    ) -> None:
        self._server = server
        self._postgres = postgres
        self._generator: ProcessMeter | None = None
        self._runner = ProcessMeter(lambda: [os.getpid()], children=False)
        self._previous_cpu: dict[str, float] = {}
        self._previous_at = 0.0
        self._options = options
        self._metrics_at = metrics_at
        self._progress: dict[int, Progress] = {}
        self._closed_sent = 0
        self.samples: list[Sample] = []
        self.round_trips: list[tuple[float, float | None]] = []  # (sent at, seconds or None when lost)
        self.scrapes: list[MetricsSnapshot] = []
        self.scrape_errors = 0

    def watch_generators(self, pids: Iterable[int]) -> None:
        wanted = list(pids)
        self._generator = ProcessMeter(lambda: wanted, children=False)
        for progress in self._progress.values():
            self._closed_sent += progress.rtp_sent  # a new step's processes count from zero
        self._progress.clear()

    def progress(self, worker: int, progress: Progress) -> None:
        self._progress[worker] = progress

    @property
    def generator_active(self) -> int:
        return sum(p.active for p in self._progress.values())

    @property
    def rtp_sent(self) -> int:
        return self._closed_sent + sum(p.rtp_sent for p in self._progress.values())

    async def scrape(self) -> MetricsSnapshot | None:
        if self._metrics_at is None:
            return None
        try:
            snapshot = await fetch_metrics(*self._metrics_at, at=time.monotonic())
        except (OSError, ConnectionError):
            self.scrape_errors += 1
            return None
        self.scrapes.append(snapshot)
        return snapshot

    async def run(self, stop: asyncio.Event) -> None:
        loops = [self._sample_loop(stop), self._scrape_loop(stop)]
        if self._options is not None:
            loops.append(self._options_loop(stop, self._options))
        await asyncio.gather(*loops)

    async def sample(self) -> Sample:
        """One reading of every watched process (CPU over the time since the previous reading)."""
        now = time.monotonic()
        values: dict[str, tuple[float | None, int | None]] = {}
        for name, meter in (
            ("server", self._server),
            ("postgres", self._postgres),
            ("generator", self._generator),
            ("runner", self._runner),
        ):
            if meter is None:
                values[name] = (None, None)
                continue
            cpu, rss = await asyncio.to_thread(meter.read)
            share = None
            if name in self._previous_cpu and now > self._previous_at:
                share = max(0.0, (cpu - self._previous_cpu[name]) / (now - self._previous_at) * 100)
            self._previous_cpu[name] = cpu
            values[name] = (share, rss)
        self._previous_at = now
        sample = Sample(
            at=now,
            server_cpu=values["server"][0],
            server_rss=values["server"][1],
            postgres_cpu=values["postgres"][0],
            postgres_rss=values["postgres"][1],
            generator_cpu=values["generator"][0],
            generator_late_ms=max((p.late_ms for p in self._progress.values()), default=0.0),
            runner_cpu=values["runner"][0],
            generator_active=self.generator_active,
            rtp_sent=self.rtp_sent,
        )
        self.samples.append(sample)
        return sample

    async def _sample_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.sample()
            await _wait(stop, SAMPLE_INTERVAL)

    async def _scrape_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.scrape()
            await _wait(stop, SCRAPE_INTERVAL)

    async def _options_loop(self, stop: asyncio.Event, probe: OptionsProbe) -> None:
        pending: set[asyncio.Task[None]] = set()

        async def one() -> None:
            sent = time.monotonic()
            self.round_trips.append((sent, await probe.probe()))

        while not stop.is_set():
            task = asyncio.create_task(one())  # a slow answer must not delay the next probe
            pending.add(task)
            task.add_done_callback(pending.discard)
            await _wait(stop, OPTIONS_INTERVAL)
        if pending:
            await asyncio.gather(*pending)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
