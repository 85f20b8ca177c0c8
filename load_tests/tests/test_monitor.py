"""The monitor's readings of real processes and of a real (small) HTTP /metrics endpoint."""

from __future__ import annotations

import asyncio
import os
import time

from load_tests.loadgen.monitor import Monitor, ProcessMeter
from load_tests.loadgen.results import Progress

METRICS = (
    b"hangtar_active_calls 3.0\nhangtar_rtp_packets_total 1500.0\nhangtar_event_loop_lag_last_seconds 0.004\n"
)


def _burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_a_process_meter_counts_cpu_time_and_memory() -> None:
    meter = ProcessMeter(lambda: [os.getpid()], children=False)
    before, rss = meter.read()
    _burn(0.2)
    after, _ = meter.read()
    assert 0.15 <= after - before < 1.0
    assert rss > 10 << 20
    assert ProcessMeter(lambda: [2**22 + 7]).read() == (0.0, 0)  # a process that does not exist


async def _serve_metrics(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + METRICS)
    await writer.drain()
    writer.close()


async def test_samples_and_scrapes() -> None:
    server = await asyncio.start_server(_serve_metrics, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monitor = Monitor(
        server=ProcessMeter(lambda: [os.getpid()], children=False),
        postgres=None,
        options=None,
        metrics_at=("127.0.0.1", port),
    )
    monitor.progress(
        0,
        Progress(
            at=1.0,
            started=4,
            answered=3,
            active=3,
            ended=0,
            rejected=0,
            timeouts=0,
            rtp_sent=900,
            rtcp_sent=2,
        ),
    )
    try:
        first = await monitor.sample()
        _burn(0.1)
        second = await monitor.sample()
        scrape = await monitor.scrape()
        # a run stops as soon as it is told to
        stop = asyncio.Event()
        stop.set()
        async with asyncio.timeout(5):
            await monitor.run(stop)
    finally:
        server.close()
    assert first.server_cpu is None  # no interval yet
    assert second.server_cpu is not None and second.server_cpu > 20
    assert second.server_rss is not None and second.runner_cpu is not None
    assert second.postgres_cpu is None and second.generator_cpu is None
    assert (second.generator_active, second.rtp_sent) == (3, 900)
    assert scrape is not None
    assert scrape.value("hangtar_active_calls") == 3 and scrape.value("hangtar_rtp_packets_total") == 1500
    assert monitor.scrape_errors == 0
    closed = Monitor(server=None, postgres=None, options=None, metrics_at=("127.0.0.1", port))
    assert await closed.scrape() is None and closed.scrape_errors == 1
