"""Run the real ``hangtar serve`` process for integration tests, on free ports and a private data dir."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (SIP listens on both)."""
    for _ in range(100):
        port = random.randint(41000, 59000)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
            try:
                udp.bind(("127.0.0.1", port))
                tcp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def rtp_range(size: int = 200) -> tuple[int, int]:
    base = random.randrange(20000, 39000, 2)
    return base, base + size - 1


@dataclass
class ServerProcess:
    data_dir: Path
    sip_port: int
    http_port: int
    rtp_ports: tuple[int, int]
    tls_port: int = field(default_factory=lambda: free_port())
    process: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None
    _ready: threading.Event = field(default_factory=threading.Event)

    def args(self) -> list[str]:
        return [
            "--data-dir",
            str(self.data_dir),
            "--sip-host",
            "127.0.0.1",
            "--sip-port",
            str(self.sip_port),
            "--http-port",
            str(self.http_port),
            "--rtp-ports",
            f"{self.rtp_ports[0]}-{self.rtp_ports[1]}",
            "--tls-port",
            str(self.tls_port),
        ]

    def start(self, *extra: str, env: dict[str, str] | None = None) -> None:
        self.output.clear()
        self._ready.clear()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "siprec_server", "serve", *self.args(), *extra],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(START_TIMEOUT):
            self.kill()
            raise RuntimeError("server did not become ready:\n" + self.log())
        if self.process.poll() is not None:
            raise RuntimeError("server exited during start:\n" + self.log())

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if " ready" in line and line.startswith("hangtar"):
                self._ready.set()
        self._ready.set()

    def log(self) -> str:
        return "".join(self.output)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait: the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        self._close_pipe()
        return code

    def _close_pipe(self) -> None:
        if self._reader is not None:
            self._reader.join(10)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
            self._close_pipe()

    def http_get(self, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.http_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample in /metrics (0 when absent)."""
        _, text = self.http_get("/metrics")
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            key, _, value = line.rpartition(" ")
            metric, _, label_text = key.partition("{")
            if metric != name:
                continue
            found = ",".join(sorted(label_text.rstrip("}").split(","))) if label_text else ""
            if found == wanted:
                return float(value)
        return 0.0

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "siprec_server", *args, "--data-dir", str(self.data_dir)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"hangtar {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def recordings(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = json.loads(self.cli("recordings", "list", "--json").stdout)
        return rows

    def wait_for_recording(self, predicate: Any, timeout: float = 30.0) -> dict[str, Any]:
        """Poll the catalogue (through the CLI, like an operator) until a row matches."""
        deadline = time.monotonic() + timeout
        rows: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            rows = self.recordings()
            for row in rows:
                if predicate(row):
                    return row
            time.sleep(0.3)
        raise AssertionError(f"no matching recording within {timeout} s; catalogue: {rows}\n{self.log()}")


@contextlib.contextmanager
def running_server(data_dir: Path, *extra: str) -> Iterator[ServerProcess]:
    server = ServerProcess(
        data_dir=data_dir, sip_port=free_port(), http_port=free_port(), rtp_ports=rtp_range()
    )
    server.start(*extra)
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.stop()
