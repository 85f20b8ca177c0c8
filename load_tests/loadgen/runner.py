"""A capacity run: a fresh server (or a running one), then each step — ramp, hold, hang up, verify — while the
monitor watches; the result is a :class:`CapacityRun` for the report.

CPUs: unless told otherwise the server (and the embedded PostgreSQL it starts) is pinned to CPU 0 and
everything of the generator — its processes, this process with the monitor — to the other CPUs, so the
server's CPU figures are its own. The audio checks after a step, when the server is idle, may use every CPU.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from siprec_server.config import ConfigError, load_config
from storage import EmbeddedDatabase, Recording
from storage.s3_config import S3Settings

from .figures import ResourceUse, step_figures
from .machine import machine_facts
from .monitor import Monitor, ProcessMeter
from .options_probe import OptionsProbe
from .profile import WorkerSpec
from .prometheus import MetricsSnapshot
from .run_records import CapacityOptions, CapacityRun, StepReport
from .server_process import REPO, ServerProcess, ServerSettings, free_port, rtp_range
from .verify import check_calls, collect_recordings, data_keys, fetch_objects
from .workers import run_generators, split_calls

__all__ = ["plan_cpus", "run_capacity"]

Log = Callable[[str], None]
_IDLE_PATIENCE = 120.0
_RECLAIM_PATIENCE = 15.0  # seconds: the freeze interval (2 s) and the reclaim itself, with room
_LOG_TAIL = 100_000  # characters of the server's log kept in the report of a failed run


def plan_cpus(pin: bool) -> tuple[frozenset[int] | None, list[int] | None]:
    """(server CPUs, generator CPUs): CPU 0 for the server, the rest for the generator; none when not pinning
    or when there is only one CPU to use."""
    available = sorted(os.sched_getaffinity(0))
    if not pin or len(available) < 2:
        return None, None
    return frozenset(available[:1]), available[1:]


def local_address_for(host: str, port: int) -> str:
    """The local address the kernel would send from to reach ``host`` (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((host, port))
        return str(probe.getsockname()[0])


class _Run:
    """The state of one run while it goes; see :func:`run_capacity`."""

    def __init__(self, options: CapacityOptions, log: Log) -> None:
        self.options = options
        self.log = log
        self.origin = time.monotonic()
        self.server: ServerProcess | None = None
        self.data_dir: Path | None = None
        self.server_cpus, self.generator_cpus = plan_cpus(options.pin)
        self.run_tag = f"cap{int(time.time()):x}"
        self.server_log_tail: str | None = None  # kept when the run failed
        self.server_exit: int | None = None

    async def start_server(self) -> tuple[tuple[str, int], tuple[str, int], str]:
        largest = max(self.options.steps)
        max_calls = largest + max(50, largest // 10)
        self.data_dir = Path(tempfile.mkdtemp(prefix="hangtar-capacity-"))
        settings = ServerSettings(
            data_dir=self.data_dir / "data",
            sip_port=free_port(),
            http_port=free_port(),
            rtp_ports=rtp_range(max_calls),
            max_calls=max_calls,
            cpus=self.server_cpus,
            extra_args=self.options.server_args,
            log_path=self.data_dir / "server.log",
        )
        self.server = ServerProcess(settings=settings)
        self.log(f"starting the server: {' '.join(settings.argv())}")
        await self.server.start()
        embedded = EmbeddedDatabase(settings.data_dir)
        dsn = await asyncio.to_thread(
            embedded.start
        )  # joins the server's cluster; stop() would only forget it
        return (settings.host, settings.sip_port), ("127.0.0.1", settings.http_port), dsn

    async def stop_server(self, failed: bool) -> None:
        if self.server is not None:
            self.server_exit = code = await self.server.stop()
            if code is None:
                self.log("the server did not exit within its stop patience after SIGTERM: killed")
            else:
                self.log(f"server stopped (exit code {code})")
        if self.data_dir is None:
            return
        log = self.data_dir / "server.log"
        if failed and log.exists():
            self.server_log_tail = log.read_text(errors="replace")[-_LOG_TAIL:]
        if self.options.keep_data:
            self.log(f"server data and log kept in {self.data_dir}")
        else:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def server_facts(self) -> dict[str, Any]:
        if self.server is None:
            return {"target": self.options.target}
        settings = self.server.settings
        return {
            "argv": settings.argv(),
            "max_calls": settings.max_calls,
            "rtp_ports": list(settings.rtp_ports),
            "pinned_cpus": sorted(settings.cpus) if settings.cpus else None,
            "banner": self.server.banner[:8],
        }

    async def run_step(
        self,
        number: int,
        calls: int,
        first_index: int,
        monitor: Monitor,
        meters: tuple[ProcessMeter | None, ProcessMeter | None],
        sip: tuple[str, int],
        dsn: str | None,
    ) -> StepReport:
        options = self.options
        await self.wait_idle(monitor)
        before = await monitor.scrape()
        server_meter, pg_meter = meters
        cpu_before = server_meter.read() if server_meter else None
        pg_before = pg_meter.cpu_seconds() if pg_meter else None
        wall = datetime.now(UTC)
        t0 = time.monotonic()
        local = "127.0.0.1" if sip[0].startswith("127.") else local_address_for(*sip)
        processes = options.processes or (len(self.generator_cpus) if self.generator_cpus else 1)
        indices = list(range(first_index, first_index + calls))
        specs = [
            WorkerSpec(
                target_host=sip[0],
                target_port=sip[1],
                local_host=local,
                call_indices=share,
                rate=rate,
                offset=offset,
                hold=options.hold,
                codec=options.codec,
                caller=options.caller,
                callee=options.callee,
                seed=options.seed,
                run_id=f"{self.run_tag}-s{number}",
                answer_timeout=options.answer_timeout,
            )
            for share, rate, offset in split_calls(indices, processes, options.rate)
        ]
        self.log(
            f"step {number}: {calls} calls at {options.rate:g}/s, hold {options.hold:g} s, "
            f"{len(specs)} generator process(es)"
        )
        results, ticks = await run_generators(
            specs, self.generator_cpus, monitor.progress, monitor.watch_generators
        )
        t1 = time.monotonic()
        recordings: dict[str, Recording] | None = None
        if dsn is not None:
            since = wall - timedelta(seconds=5)
            recordings = await collect_recordings(dsn, results, since=since, patience=60 + calls / 20)
        else:
            await self.wait_idle(monitor)
        cpu_after = server_meter.read() if server_meter else None
        pg_after = pg_meter.cpu_seconds() if pg_meter else None
        after = await monitor.scrape()
        verdicts = None
        if recordings is not None:
            self.log(f"step {number}: checking {len(recordings)} recordings")
            keys: dict[str, bytes] = {}
            key_file = self.key_file()
            if dsn is not None and key_file is not None:
                keys = await data_keys(dsn, recordings, key_file)
            settings = _s3_settings()
            with tempfile.TemporaryDirectory(prefix="hangtar-verify-") as copies:
                if settings is not None and any(r.object_key for r in recordings.values()):
                    # Recordings in an object store: their sealed objects copied here to be read.
                    recordings = await fetch_objects(recordings, settings, Path(copies))
                verdicts = await check_calls(results, recordings, processes=os.cpu_count() or 1, keys=keys)
        reclaimed = await self.wait_reclaim(monitor, before)
        figures = step_figures(
            calls=results,
            hold=options.hold,
            verdicts=verdicts,
            samples=[s for s in monitor.samples if t0 <= s.at <= t1],
            round_trips=[rtt for at, rtt in monitor.round_trips if t0 <= at <= t1],
            before=before,
            after=after,
            scrapes=[s for s in monitor.scrapes if t0 <= s.at <= t1],
            reclaimed=reclaimed,
            resources=ResourceUse(
                server_cpu_seconds=cpu_after[0] - cpu_before[0] if cpu_before and cpu_after else None,
                postgres_cpu_seconds=pg_after - pg_before
                if pg_before is not None and pg_after is not None
                else None,
                server_rss_before=cpu_before[1] if cpu_before else None,
            ),
            ticks=ticks,
        )
        report = StepReport(
            number=number,
            started_at=wall.isoformat(),
            window=(t0 - self.origin, t1 - self.origin),
            figures=figures,
            verdicts=None if verdicts is None else tuple(verdicts),
            calls=tuple(results),
        )
        verified = "not verified" if figures.verified is None else f"{figures.verified}/{calls} verified"
        self.log(
            f"step {number}: {figures.answered}/{calls} answered, {figures.rejected} rejected, "
            f"{figures.timeouts} timed out; {verified}"
        )
        for failure in report.failures[:10]:
            self.log(f"  {failure.call_id}: {'; '.join(failure.problems)}")
        return report

    def key_file(self) -> Path | None:
        """The server's key file: ours under the data dir we started it on, else the one given."""
        if self.options.key_file:
            return Path(self.options.key_file)
        if self.data_dir is not None:
            return self.data_dir / "data" / "keys" / "keys.json"
        return None

    async def wait_reclaim(self, monitor: Monitor, before: MetricsSnapshot | None) -> MetricsSnapshot | None:
        """The scrape after the server's idle reclaim following the step (a server we started reclaims one
        second into being idle); None for a server we did not start or one that does not reclaim."""
        if self.server is None or before is None:
            return None
        deadline = time.monotonic() + _RECLAIM_PATIENCE
        while time.monotonic() < deadline:
            snapshot = await monitor.scrape()
            if snapshot is not None and snapshot.total("hangtar_gc_reclaims_total") > before.total(
                "hangtar_gc_reclaims_total"
            ):
                return snapshot
            await asyncio.sleep(0.5)
        self.log(f"the server made no idle reclaim within {_RECLAIM_PATIENCE:g} s of the step's end")
        return None

    async def wait_idle(self, monitor: Monitor) -> None:
        """Until the server reports no call in progress (when its metrics can be read)."""
        deadline = time.monotonic() + _IDLE_PATIENCE
        while time.monotonic() < deadline:
            snapshot = await monitor.scrape()
            if snapshot is None or snapshot.value("hangtar_active_calls") == 0:
                return
            await asyncio.sleep(0.25)
        raise RuntimeError(f"the server still had calls in progress after {_IDLE_PATIENCE:g} s")

    def timeline(self, monitor: Monitor) -> dict[str, list[dict[str, Any]]]:
        def t(at: float) -> float:
            return round(at - self.origin, 3)

        scrapes = []
        previous = None
        for scrape in monitor.scrapes:
            loss = None
            if previous is not None:
                lost = scrape.total("hangtar_rtp_lost_total") - previous.total("hangtar_rtp_lost_total")
                got = scrape.total("hangtar_rtp_packets_total") - previous.total("hangtar_rtp_packets_total")
                loss = lost / (lost + got) * 100 if lost + got > 0 else None
            scrapes.append(
                {
                    "t": t(scrape.at),
                    "active_calls": scrape.value("hangtar_active_calls"),
                    "rtp_loss_percent": loss,
                    "loop_lag_ms": scrape.value("hangtar_event_loop_lag_last_seconds") * 1000,
                    "write_backlog": scrape.value("hangtar_write_backlog"),
                }
            )
            previous = scrape
        return {
            "samples": [
                {
                    "t": t(s.at),
                    "server_cpu": s.server_cpu,
                    "server_rss_mb": None if s.server_rss is None else round(s.server_rss / 2**20, 1),
                    "postgres_cpu": s.postgres_cpu,
                    "generator_cpu": s.generator_cpu,
                    "generator_late_ms": round(s.generator_late_ms, 1),
                    "runner_cpu": s.runner_cpu,
                    "calls": s.generator_active,
                    "rtp_sent": s.rtp_sent,
                }
                for s in monitor.samples
            ],
            "scrapes": scrapes,
            "options": [
                {"t": t(at), "ms": None if rtt is None else round(rtt * 1000, 3)}
                for at, rtt in monitor.round_trips
            ],
        }


async def run_capacity(options: CapacityOptions, log: Log) -> CapacityRun:
    """Run every step; the server this starts is stopped again whatever happens."""
    run = _Run(options, log)
    started_at = datetime.now(UTC).isoformat()
    if run.generator_cpus is not None:
        os.sched_setaffinity(0, run.generator_cpus)  # the monitor and the runner stay off the server's CPU
    steps: list[StepReport] = []
    monitor: Monitor | None = None
    failed = True
    try:
        if options.target is None:
            sip, http, dsn = await run.start_server()
            assert run.server is not None
            server = run.server
            server_meter: ProcessMeter | None = ProcessMeter(lambda: [server.pid])
            pg_meter: ProcessMeter | None = ProcessMeter(lambda: _some(server.postmaster_pid()))
            dsn_used: str | None = dsn
            http_used: tuple[str, int] | None = http
        else:
            sip, http_used, dsn_used = options.target, options.http, options.dsn
            pid = options.server_pid
            server_meter = ProcessMeter(lambda: _some(pid)) if pid else None
            pg_meter = None
        probe = OptionsProbe(sip, "127.0.0.1" if sip[0].startswith("127.") else local_address_for(*sip))
        await probe.open()
        monitor = Monitor(server=server_meter, postgres=pg_meter, options=probe, metrics_at=http_used)
        stop = asyncio.Event()
        watching = asyncio.create_task(monitor.run(stop))
        try:
            first = 0
            for number, calls in enumerate(options.steps, start=1):
                steps.append(
                    await run.run_step(number, calls, first, monitor, (server_meter, pg_meter), sip, dsn_used)
                )
                first += calls
        finally:
            stop.set()
            await watching
            probe.close()
        failed = not all(step.passed for step in steps)
    finally:
        await run.stop_server(failed)
    return CapacityRun(
        options=options,
        machine=machine_facts(REPO),
        server={**run.server_facts(), "exit_code": run.server_exit, "log_tail": run.server_log_tail},
        steps=tuple(steps),
        timeline=run.timeline(monitor) if monitor else {},
        started_at=started_at,
        duration=time.monotonic() - run.origin,
    )


def _some(pid: int | None) -> Sequence[int]:
    return [] if pid is None else [pid]


def _s3_settings() -> S3Settings | None:
    """The object store the server uploads to, from the same ``HANGTAR_S3_*`` settings (None: none)."""
    try:
        return load_config().s3
    except ConfigError:
        return None
