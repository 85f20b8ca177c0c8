"""Running the generator processes of one step: spawn, pin, hand out the plans, start together, collect.

Each process is ``python -m load_tests.loadgen.worker`` (see there for the line protocol), pinned to one of
the CPUs the generator was given (round robin). All of them report ready before any starts, and they share
one start time, so the ramp is one ramp however many processes carry it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from .profile import WorkerSpec
from .results import CallResult, Progress, TickStats
from .server_process import REPO

__all__ = ["GeneratorError", "run_generators", "split_calls"]

_LINE_LIMIT = 256 << 20  # the result line of a process with thousands of calls is megabytes long
_START_MARGIN = 0.2  # seconds between the start signal and the common start time
_READY_PATIENCE = 120.0


class GeneratorError(RuntimeError):
    """A generator process failed."""


def split_calls(
    indices: Sequence[int], processes: int, rate: float
) -> list[tuple[tuple[int, ...], float, float]]:
    """Deal the calls round robin: (indices, rate, offset) per process, so that together they start one call
    every ``1 / rate`` seconds in index order."""
    processes = max(1, min(processes, len(indices)))
    return [(tuple(indices[p::processes]), rate / processes, p / rate) for p in range(processes)]


class _Process:
    def __init__(self, number: int, spec: WorkerSpec, cpu: int | None) -> None:
        self.number = number
        self.spec = spec
        self.cpu = cpu
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def spawn(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "load_tests.loadgen.worker",
            cwd=REPO,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=_LINE_LIMIT,
        )
        if self.cpu is not None:
            os.sched_setaffinity(self.proc.pid, {self.cpu})
        await self._write({"spec": self.spec.to_json()})
        ready = await self._read()
        if ready.get("type") != "ready":
            raise GeneratorError(f"generator {self.number} did not get ready: {ready}")

    async def go(self, start_at: float) -> None:
        await self._write({"start_at": start_at})

    async def results(
        self, on_progress: Callable[[int, Progress], None]
    ) -> tuple[list[CallResult], TickStats]:
        while True:
            record = await self._read()
            kind = record.pop("type", None)
            if kind == "progress":
                on_progress(self.number, Progress.from_json(record))
            elif kind == "result":
                assert self.proc is not None
                await self.proc.wait()
                calls = [CallResult.from_json(call) for call in record["calls"]]
                return calls, TickStats.from_json(record["ticks"])

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()

    async def _write(self, record: dict[str, Any]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(record) + "\n").encode())
        await self.proc.stdin.drain()

    async def _read(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        if not line:
            code = await self.proc.wait()
            raise GeneratorError(f"generator {self.number} exited with code {code} before its results")
        record: dict[str, Any] = json.loads(line)
        return record


async def run_generators(
    specs: Sequence[WorkerSpec],
    cpus: Sequence[int] | None,
    on_progress: Callable[[int, Progress], None],
    on_started: Callable[[list[int]], None] = lambda pids: None,
) -> tuple[list[CallResult], list[TickStats]]:
    """Run one process per spec to the end: every call's result, by call index, and each loop's punctuality."""
    processes = [
        _Process(number, spec, cpus[number % len(cpus)] if cpus else None)
        for number, spec in enumerate(specs)
    ]
    try:
        async with asyncio.timeout(_READY_PATIENCE):
            await asyncio.gather(*(process.spawn() for process in processes))
        on_started([process.pid for process in processes])
        start_at = time.monotonic() + _START_MARGIN
        await asyncio.gather(*(process.go(start_at) for process in processes))
        batches = await asyncio.gather(*(process.results(on_progress) for process in processes))
    except BaseException:
        await asyncio.gather(*(process.kill() for process in processes))
        raise
    calls = sorted((call for batch, _ in batches for call in batch), key=lambda call: call.index)
    return calls, [ticks for _, ticks in batches]
