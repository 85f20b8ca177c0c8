"""Delivery throughput: recordings per minute to a real OpenSSH sshd on loopback, against ``cp`` of the same bytes.

Sets up what a node has: the embedded PostgreSQL, N finished calls of S seconds each (two-party speech-shaped
FLAC, sealed at rest with their own data keys, as the recorder leaves them), and an SFTP target with key login
and a pinned host key. Then one worker pass per concurrency level delivers all of them, each to its own remote
directory: outbox claim, decryption, SFTP upload to ``.part``, stat, rename, SHA-256 check, metadata sidecar,
outbox settle and audit entry per recording. The baseline is ``cp`` of the same plaintext FLAC files from one
directory to another on the same disk: what moving the bytes costs with no protocol, crypto or bookkeeping.

    .venv/bin/python load_tests/bench_delivery.py --recordings 200 --seconds 60 --concurrency 1 4 8

Needs /usr/sbin/sshd (``bash tests/system-packages.sh``) and root (sshd runs in a private mount namespace).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from load_tests.bench_media_pipeline import speech_like
from siprec_server.config import load_config
from siprec_server.delivery import DeliveryWorker, PayloadSource, SftpTransport
from siprec_server.sealing import RecordingCrypto
from storage import Catalogue, FileBlobStore, RecordingStatus, migrate, open_pool
from storage.audit import Actor, AuditLog
from storage.delivery_outbox import Outbox
from storage.delivery_schedule import Schedule
from storage.delivery_targets import TargetKind, TargetStore
from storage.keyfile import KeyFileProvider
from storage.sealed import SEALED_FORMAT, SealedWriter
from tests.pg import running_cluster, scratch_dir
from tests.unit.delivery.sshd import USER, Sshd, running_sshd
from tests.unit.storage.samples import new_recording, received_streams

RATE = 8000
START = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
OPERATOR = Actor(name="bench", origin="cli")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def call_flac(seconds: float, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    caller = speech_like(seconds, 120.0 + seed, True, rng)
    callee = speech_like(seconds, 210.0 + seed, False, rng)
    buffer = io.BytesIO()
    soundfile.write(buffer, np.stack([caller, callee], axis=1), RATE, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def seal(path: Path, key: bytes, data: bytes) -> int:
    with SealedWriter(path, key) as sealed:
        sealed.write(data)
    return path.stat().st_size


async def make_calls(
    pool: object, crypto: RecordingCrypto, blobs: FileBlobStore, tenant_id: object, count: int, seconds: float
) -> list[bytes]:
    variants = [call_flac(seconds, seed) for seed in range(min(count, 8))]
    catalogue = Catalogue(pool)
    audio = []
    for index in range(count):
        data = variants[index % len(variants)]
        started = START + timedelta(seconds=index * 7)
        created = await catalogue.create(
            new_recording(
                id=uuid4(),
                started_at=started,
                call_id=f"{uuid4().hex}@pbx.example.hu",
                session_ids=[uuid4().hex],
                group_ids=[],
                tenant_id=tenant_id,
                basis="legitimate_interest",
                purpose="quality assurance",
                numbers=("+3612345678", "+36301234567"),
                encryption=SEALED_FORMAT,
            )
        )
        key = await crypto.create_key(created.id, tenant_id)  # type: ignore[arg-type]
        path = Path(str(blobs.path_for(created.id, started, "flac")) + ".sealed")
        size = await asyncio.to_thread(seal, path, key, data)
        await catalogue.finish(
            created.id,
            status=RecordingStatus.COMPLETE,
            ended_at=started + timedelta(seconds=seconds),
            media_started_at=started,
            duration_seconds=seconds,
            streams=received_streams(started),
            file_path=str(path),
            format="flac",
            size_bytes=size,
            sha256=hashlib.sha256(data).hexdigest(),
            encryption=SEALED_FORMAT,
        )
        audio.append(data)
    return audio


def cp_baseline(work: Path, audio: list[bytes]) -> float:
    source, target = work / "cp-source", work / "cp-target"
    source.mkdir()
    for index, data in enumerate(audio):
        (source / f"call-{index:04d}.flac").write_bytes(data)
    subprocess.run(["sync"], check=True)
    begin = time.perf_counter()
    subprocess.run(["cp", "-r", str(source), str(target)], check=True)
    elapsed = time.perf_counter() - begin
    shutil.rmtree(source)
    shutil.rmtree(target)
    return elapsed


async def bench(args: argparse.Namespace, sshd: Sshd, work: Path, dsn: str) -> None:
    config = load_config(environ={}, overrides={"data_dir": work / "data", "database_dsn": dsn})
    pool = await open_pool(dsn, max_size=max(8, 2 * max(args.concurrency)))
    try:
        await migrate(pool)
        clock = Clock(START - timedelta(days=1))
        audit = AuditLog(clock=clock)
        provider = KeyFileProvider(config.key_file_path)
        crypto = RecordingCrypto(pool, provider)
        blobs = FileBlobStore(config.recordings_dir)
        tenant_id = uuid4()
        await pool.execute(
            "INSERT INTO tenants (id, slug, name) VALUES ($1, 'bench', 'Bench Kft.')", tenant_id
        )
        print(f"making {args.recordings} calls of {args.seconds:.0f} s ...", file=sys.stderr)
        audio = await make_calls(pool, crypto, blobs, tenant_id, args.recordings, args.seconds)
        total = sum(len(data) for data in audio)
        targets = TargetStore(pool, provider, audit=audit, clock=clock)
        outbox = Outbox(pool, audit=audit, clock=clock)
        print(
            f"{args.recordings} recordings, {args.seconds:.0f} s each, FLAC {total / args.recordings / 1e6:.2f} MB "
            f"on average ({total / 1e6:.1f} MB in all), sealed at rest; SFTP to OpenSSH sshd on loopback"
        )
        for concurrency in args.concurrency:
            clock.now = START - timedelta(days=1)  # the target exists before the calls end
            target = await targets.create(
                tenant_id,
                kind=TargetKind.SFTP,
                name=f"bench-c{concurrency}",
                settings={
                    "host": "127.0.0.1",
                    "port": sshd.port,
                    "username": USER,
                    "remote_dir": f"bench-c{concurrency}",
                    "host_key": sshd.host_key,
                    "auth": "key",
                },
                secret=sshd.client_key,
                schedule=Schedule.every(3600),
                actor=OPERATOR,
            )
            clock.now = START + timedelta(days=1)
            worker = DeliveryWorker(
                outbox=outbox,
                targets=targets,
                payloads=PayloadSource(pool, blobs, crypto, spool=work / "spool"),
                transports={TargetKind.SFTP: SftpTransport()},
                clock=clock,
                node="bench",
                concurrency=concurrency,
            )
            begin = time.perf_counter()
            report = await worker.run_once(target_id=target.id)
            elapsed = time.perf_counter() - begin
            arrived = sshd.files(f"bench-c{concurrency}")
            assert report.delivered == args.recordings, report
            assert sum(1 for name in arrived if name.endswith(".flac")) == args.recordings
            print(
                f"  concurrency {concurrency:>2}: {elapsed:6.2f} s, {args.recordings / elapsed * 60:8.0f} "
                f"recordings/min, {total / elapsed / 1e6:6.1f} MB/s, {elapsed / args.recordings * 1000:6.1f} ms "
                "per recording"
            )
            shutil.rmtree(sshd.home / f"bench-c{concurrency}")
        copy = cp_baseline(work, audio)
        print(
            f"  baseline cp: {copy:6.2f} s, {args.recordings / copy * 60:8.0f} recordings/min, "
            f"{total / copy / 1e6:6.1f} MB/s (the same plaintext FLAC files, disk to disk)"
        )
    finally:
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recordings", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    args = parser.parse_args()
    with (
        scratch_dir("hangtar-bench-delivery-") as work,
        running_cluster(work / "pg") as cluster,
        running_sshd() as sshd,
    ):
        dsn = asyncio.run(cluster.create_database("bench"))
        asyncio.run(bench(args, sshd, work, dsn))


if __name__ == "__main__":
    main()
