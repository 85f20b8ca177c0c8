"""``kill -9`` of the real ``hangtar serve`` in the middle of an SFTP delivery, then a restart on the same data dir:
the subscriber's server ends with exactly one complete copy under the final name, and no temporary file.

The target is OpenSSH's sshd (tests/unit/delivery/sshd.py) behind a TCP relay in this test that lets the upload
through at 128 KB/s, so that a 60-second call (about 1 MB of FLAC) is still on its way when the process dies.
The recording is seeded into the server's catalogue as the recorder leaves one at hang-up: sealed under a data
key wrapped by the tenant key in the server's own key file."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any
from uuid import UUID, uuid4

import numpy as np
import soundfile

from siprec_server.config import load_config
from siprec_server.sealing import RecordingCrypto
from storage import Catalogue, EmbeddedDatabase, FileBlobStore, RecordingStatus, open_pool
from storage.keyfile import KeyFileProvider
from storage.sealed import SEALED_FORMAT, SealedWriter
from tests.unit.delivery.sshd import USER, Sshd, running_sshd
from tests.unit.storage.samples import new_recording, received_streams

from .server import ServerProcess, free_port, rtp_range

CALLER, CALLEE = "+3612345678", "+36301234567"
RATE = 128 * 1024  # octets a second toward sshd while the first server runs
PASS_EVERY = {"HANGTAR_DELIVERY_INTERVAL": "5"}  # the shortest delivery interval the server allows


class Throttle:
    """A TCP relay on loopback to ``upstream``; what the client sends goes on at ``rate`` octets a second at
    most (None: at once), answers come back at once. Every connection is cut when the relay closes."""

    def __init__(self, upstream: int, rate: int | None) -> None:
        self.rate = rate
        self._upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def __enter__(self) -> Throttle:
        self._spawn(self._accept)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
        for thread in self._threads:
            thread.join(10)

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(("127.0.0.1", self._upstream), timeout=10)
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            self._spawn(self._pump, client, upstream, True)
            self._spawn(self._pump, upstream, client, False)

    def _pump(self, source: socket.socket, sink: socket.socket, throttled: bool) -> None:
        started, passed = time.monotonic(), 0
        try:
            while chunk := source.recv(16384):
                if throttled and self.rate is not None:
                    passed += len(chunk)
                    behind = started + passed / self.rate - time.monotonic()
                    if behind > 0:
                        time.sleep(behind)  # the line's pace, not a wait for readiness
                sink.sendall(chunk)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def call_audio(seconds: float, rate: int = 8000) -> bytes:
    """A two-party call as the recorder writes it (stereo FLAC): voiced, syllable-modulated speech-like signals
    over line noise, so that it compresses like speech (about 17 KB a second) rather than like a tone."""
    rng = np.random.default_rng(7)
    t = np.arange(int(seconds * rate)) / rate
    channels = []
    for pitch in (121.0, 207.0):
        voice = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 9))
        syllables = 0.5 * (1 + np.sin(2 * np.pi * 3.7 * t + rng.uniform(0, 6.28))) ** 2
        channels.append(0.08 * voice * syllables + 0.004 * rng.standard_normal(t.size))
    buffer = io.BytesIO()
    soundfile.write(buffer, np.stack(channels, axis=1), rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


@dataclass(frozen=True, slots=True)
class Seeded:
    id: UUID
    reference: str
    audio: bytes


async def _database(data_dir: Path) -> tuple[EmbeddedDatabase, str]:
    database = EmbeddedDatabase(data_dir)
    return database, await asyncio.to_thread(database.start)  # joins the server's cluster (or its orphan)


def seed_recording(data_dir: Path, tenant: str, seconds: float) -> Seeded:
    """A finished call of ``tenant``, ended now, sealed and catalogued as the server leaves one at hang-up."""

    async def run() -> Seeded:
        config = load_config(environ={}, overrides={"data_dir": data_dir})
        database, dsn = await _database(data_dir)
        pool = await open_pool(dsn, max_size=2)
        try:
            tenant_id = await pool.fetchval("SELECT id FROM tenants WHERE slug = $1", tenant)
            class_id = await pool.fetchval(
                "SELECT id FROM retention_classes WHERE code = 'quality_60d' AND tenant_id IS NULL"
            )
            ended = datetime.now(UTC)
            started = ended - timedelta(seconds=seconds + 1.5)
            catalogue = Catalogue(pool)
            created = await catalogue.create(
                new_recording(
                    id=uuid4(),
                    started_at=started,
                    call_id=f"{uuid4().hex}@pbx.example.hu",
                    session_ids=[uuid4().hex],
                    group_ids=[],
                    call_facts={
                        "calling_number": {
                            "value": CALLER,
                            "raw": f"sip:{CALLER}@pbx.example.hu",
                            "source": "from",
                        },
                        "called_number": {
                            "value": CALLEE,
                            "raw": f"sip:{CALLEE}@pbx.example.hu",
                            "source": "to",
                        },
                    },
                    tenant_id=tenant_id,
                    basis="legitimate_interest",
                    purpose="customer service",
                    retention_class_id=class_id,
                    numbers=(CALLER, CALLEE),
                    encryption=SEALED_FORMAT,
                )
            )
            crypto = RecordingCrypto(pool, KeyFileProvider(config.key_file_path))
            data_key = await crypto.create_key(created.id, tenant_id)
            audio = call_audio(seconds)
            blobs = FileBlobStore(config.recordings_dir)
            path = Path(str(blobs.path_for(created.id, started, "flac")) + ".sealed")
            stored_size = await asyncio.to_thread(_seal, path, data_key, audio)
            await catalogue.finish(
                created.id,
                status=RecordingStatus.COMPLETE,
                ended_at=ended,
                media_started_at=started + timedelta(milliseconds=180),
                duration_seconds=seconds,
                streams=received_streams(started),
                file_path=str(path),
                format="flac",
                size_bytes=stored_size,
                sha256=hashlib.sha256(audio).hexdigest(),
                expires_at=started + timedelta(days=60),
                encryption=SEALED_FORMAT,
            )
            return Seeded(id=created.id, reference=created.reference, audio=audio)
        finally:
            await pool.close()
            database.stop()  # forgets a joined cluster; the server's keeps running

    return asyncio.run(run())


def _seal(path: Path, data_key: bytes, audio: bytes) -> int:
    """The sealed file as the recorder leaves it: encrypted from the first byte; its size on disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with SealedWriter(path, data_key) as sealed:
        sealed.write(audio)
    return path.stat().st_size


def wait_for(what: str, check: Any, server: ServerProcess, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s:\n{server.log()}")
        time.sleep(0.05)  # polling the remote directory, not waiting in its place
    return found


def uploads(sshd: Sshd) -> list[Path]:
    folder = sshd.home / "incoming"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def settled_attempts(server: ServerProcess, count: int) -> list[dict[str, Any]] | None:
    """The delivery log (``hangtar delivery log``, as an operator reads it) once it holds ``count`` attempts
    that all ended; None before."""
    entries: list[dict[str, Any]] = json.loads(server.cli("delivery", "log", "--json").stdout)
    return entries if len(entries) == count and all(e["result"] for e in entries) else None


def test_the_server_killed_mid_upload_leaves_one_complete_copy_after_restart(
    data_dir: Path, tmp_path: Path
) -> None:
    server = ServerProcess(
        data_dir=data_dir, sip_port=free_port(), http_port=free_port(), rtp_ports=rtp_range()
    )
    with running_sshd() as sshd, Throttle(sshd.port, RATE) as line:
        key_file = tmp_path / "acme-delivery"
        key_file.write_text(sshd.client_key)
        key_file.chmod(0o600)
        server.start(env=PASS_EVERY)
        try:
            server.cli("tenants", "create", "acme", "--name", "Acme Kft.")
            server.cli(
                "delivery", "targets", "add", "--tenant", "acme", "--name", "archive",
                "--url", f"sftp://{USER}@127.0.0.1:{line.port}/~/incoming",
                "--host-key", sshd.host_key, "--key-file", str(key_file), "--schedule", "every 5s",
            )  # fmt: skip
            call = seed_recording(data_dir, "acme", seconds=60.0)
            assert len(call.audio) > 600_000  # several SFTP writes: the cut lands inside the file
            part = wait_for(
                "a partial upload",
                lambda: next(
                    (p for p in uploads(sshd) if p.name.endswith(".flac.part") and p.stat().st_size > 0), None
                ),
                server,
            )
            server.kill()  # SIGKILL: the upload is cut off mid-file, the outbox still says 'sending'
        finally:
            server.kill()
        left = uploads(sshd)
        assert [p.name for p in left] == [part.name], left  # nothing under a final name
        assert 0 < part.stat().st_size < len(call.audio)

        line.rate = None
        # The same data dir and node: its catalogue, outbox and keys. The restart takes back the claim its dead
        # process held at once, without waiting for the 15-minute lease.
        server.start(env=PASS_EVERY)
        try:
            final = part.with_name(part.name.removesuffix(".part"))
            sidecar = final.with_suffix(".json")
            wait_for("the delivery", lambda: final.exists() and sidecar.exists(), server)
            log = wait_for("the delivery's log entry", lambda: settled_attempts(server, 2), server)
        finally:
            server.stop()
        # What the subscriber finds:
        assert [p.name for p in uploads(sshd)] == sorted([final.name, sidecar.name])  # no .part left
        assert final.name.endswith(f"_{call.reference}.flac")
        copy = final.read_bytes()
        assert hashlib.sha256(copy).hexdigest() == hashlib.sha256(call.audio).hexdigest()
        assert json.loads(sidecar.read_text())["audio"]["sha256"] == hashlib.sha256(copy).hexdigest()
        assert [(e["attempt"], e["result"]) for e in sorted(log, key=lambda e: e["attempt"])] == [
            (1, "abandoned"),
            (2, "delivered"),
        ]
        delivered = next(e for e in log if e["result"] == "delivered")
        assert delivered["remote_path"] == f"incoming/{final.name}" and delivered["bytes"] == len(call.audio)
