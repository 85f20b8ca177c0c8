"""A fresh ``hangtar serve`` for a capacity run: private data directory, free ports, its own embedded
PostgreSQL, optionally pinned to chosen CPUs with ``taskset``.

The server is ready when it prints its ``hangtar … ready`` banner on stdout; its log (stderr) goes to a file.
Its RTP range lies below the kernel's ephemeral ports, where the generator's own sockets never land, and holds
two port pairs per call for every call the server may take.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

import psutil  # type: ignore[import-untyped,unused-ignore]

__all__ = ["REPO", "ServerProcess", "ServerSettings", "free_port", "rtp_range"]

REPO = Path(__file__).resolve().parents[2]
_EPHEMERAL_LOW = 32768  # Linux default net.ipv4.ip_local_port_range starts here


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on ``host`` right now (SIP listens on both)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
            try:
                udp.bind((host, 0))
                tcp.bind((host, udp.getsockname()[1]))
            except OSError:
                continue
            return int(udp.getsockname()[1])
    raise RuntimeError("no port free for both UDP and TCP")


def rtp_range(max_calls: int, rng: random.Random | None = None) -> tuple[int, int]:
    """An even-based RTP range with two RTP/RTCP pairs per call and 10 % to spare, below the ephemeral range."""
    size = 4 * max_calls + max(200, max_calls // 10 * 4)
    low = 10000 if size > _EPHEMERAL_LOW - 20000 else 20000
    if low + size > _EPHEMERAL_LOW:
        raise ValueError(f"{max_calls} calls need {size} RTP ports: more than fit below {_EPHEMERAL_LOW}")
    base = (rng or random.Random()).randrange(low, _EPHEMERAL_LOW - size + 1, 2)
    return base, base + size - 1


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    data_dir: Path
    host: str = "127.0.0.1"
    sip_port: int
    http_port: int
    rtp_ports: tuple[int, int]
    max_calls: int
    cpus: frozenset[int] | None = None  # taskset -c …; None: not pinned
    extra_args: tuple[str, ...] = ()
    log_path: Path

    def argv(self) -> list[str]:
        command = [
            sys.executable,
            "-m",
            "siprec_server",
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--sip-host",
            self.host,
            "--sip-port",
            str(self.sip_port),
            "--http-host",
            "127.0.0.1",
            "--http-port",
            str(self.http_port),
            "--rtp-ports",
            f"{self.rtp_ports[0]}-{self.rtp_ports[1]}",
            "--tls-port",
            "0",
            *self.extra_args,
        ]
        if self.cpus is not None:
            command = ["taskset", "-c", ",".join(str(cpu) for cpu in sorted(self.cpus)), *command]
        return command

    def environment(self) -> dict[str, str]:
        # A full collection as soon as the server is idle: what each step's calls left unreachable is counted
        # right after it (hangtar_gc_reclaimed_objects_total), between the steps.
        return {
            "HANGTAR_GC_IDLE_RECLAIM": "1",
            **os.environ,
            "HANGTAR_RECORDING_MAX_CALLS": str(self.max_calls),
        }


@dataclass(slots=True, kw_only=True)
class ServerProcess:
    settings: ServerSettings
    banner: list[str] = field(default_factory=list)
    _process: asyncio.subprocess.Process | None = None
    _drain: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the server is not started")
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self, patience: float = 90.0) -> None:
        """Start the server and wait for its ready banner (``patience`` seconds at most)."""
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        with settings.log_path.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                *settings.argv(),
                cwd=REPO,
                env=settings.environment(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )
        stdout = self._process.stdout
        assert stdout is not None
        try:
            async with asyncio.timeout(patience):
                while True:
                    line = (await stdout.readline()).decode("utf-8", "replace")
                    if not line:
                        raise RuntimeError(f"the server exited during start; see {settings.log_path}")
                    self.banner.append(line.rstrip())
                    if line.startswith("hangtar") and " ready" in line:
                        break
        except BaseException:
            await self.kill()
            raise
        self._drain = asyncio.create_task(self._keep_reading(stdout))

    async def _keep_reading(self, stdout: asyncio.StreamReader) -> None:
        while line := await stdout.readline():
            self.banner.append(line.decode("utf-8", "replace").rstrip())

    async def stop(self, patience: float = 120.0) -> int | None:
        """SIGTERM and wait for the exit code (the embedded PostgreSQL stops with it)."""
        process = self._process
        if process is None:
            return None
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(patience):
                code = await process.wait()
        except TimeoutError:
            await self.kill()
            return None
        if self._drain is not None:
            await self._drain
        return code

    async def kill(self) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            await self._stop_orphaned_database()

    async def _stop_orphaned_database(self) -> None:
        """A killed server cannot stop the embedded PostgreSQL it started: shut that one down (fast)."""
        pid = self.postmaster_pid()
        if pid is None:
            return
        try:
            postmaster = psutil.Process(pid)
            if str(self.settings.data_dir / "pg") not in " ".join(postmaster.cmdline()):
                return  # a stale pid file naming some other process
            postmaster.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
            await asyncio.to_thread(postmaster.wait, 30)
        except (psutil.Error, psutil.TimeoutExpired):
            return

    def postmaster_pid(self) -> int | None:
        """The embedded cluster's postmaster, from its pid file (its backends are its children)."""
        pid_file = self.settings.data_dir / "pg" / "postmaster.pid"
        try:
            first = pid_file.read_text().split("\n", 1)[0].strip()
        except OSError:
            return None
        return int(first) if first.isdigit() else None
