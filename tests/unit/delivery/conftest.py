"""Real services for the delivery tests: PostgreSQL (the product's embedded cluster), an OpenSSH sshd on loopback,
and encrypted recordings made as the server makes them (sealed audio, a data key wrapped by the tenant key)."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import numpy as np
import pytest
import soundfile

from siprec_server.config import Config, load_config
from siprec_server.delivery import DeliveryWorker, PayloadSource, SftpTransport
from siprec_server.sealing import RecordingCrypto
from storage import Catalogue, FileBlobStore, Recording, RecordingStatus, migrate, open_pool
from storage.audit import AuditLog
from storage.delivery_copies import DeliveredCopies
from storage.delivery_outbox import Outbox
from storage.delivery_targets import TargetKind, TargetStore
from storage.erasure import ErasureService
from storage.keyfile import KeyFileProvider
from storage.sealed import SEALED_FORMAT, SealedWriter
from tests.pg import PgCluster, running_cluster, scratch_dir
from tests.unit.storage.retention_samples import CALLEE, CALLER, T0, Clock, make_tenant
from tests.unit.storage.samples import new_recording, received_streams

from .sshd import Sshd, running_sshd

LEASE = timedelta(minutes=10)


@pytest.fixture(scope="session")
def pg() -> Iterator[PgCluster]:
    with scratch_dir() as data_dir, running_cluster(data_dir) as cluster:
        yield cluster


@pytest.fixture
def sshd() -> Iterator[Sshd]:
    with running_sshd() as server:
        yield server


def call_audio(seconds: float, seed: int, rate: int = 8000) -> bytes:
    """A two-channel FLAC call as the recorder writes it: each party a voiced, syllable-modulated signal over a
    little line noise, so that it compresses like speech rather than like a pure tone."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    channels = []
    for pitch in (118.0 + seed % 7, 205.0 + seed % 11):
        voice = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 9))
        syllables = 0.5 * (1 + np.sin(2 * np.pi * 3.7 * t + rng.uniform(0, 6.28))) ** 2
        channels.append(0.08 * voice * syllables + 0.004 * rng.standard_normal(t.size))
    buffer = io.BytesIO()
    soundfile.write(buffer, np.stack(channels, axis=1), rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


@dataclass(slots=True)
class Env:
    """One tenant's catalogue, recordings directory and key file, and the delivery services over them."""

    config: Config
    pool: asyncpg.Pool
    clock: Clock
    tenant_id: UUID
    provider: KeyFileProvider
    crypto: RecordingCrypto
    blobs: FileBlobStore
    targets: TargetStore
    outbox: Outbox
    erasure: ErasureService
    plaintext: dict[UUID, bytes] = field(default_factory=dict)  # the audio each recording holds

    async def add_recording(
        self,
        *,
        seconds: float = 3.0,
        started_at: Any = None,
        numbers: tuple[str, ...] = (CALLER, CALLEE),
        class_code: str = "quality_60d",
        basis: str = "legitimate_interest",
        direction: str | None = "inbound",
    ) -> Recording:
        """A finished, sealed recording of this tenant, as the server leaves it at hang-up."""
        started = started_at or self.clock.now
        class_id = await self.pool.fetchval(
            "SELECT id FROM retention_classes WHERE code = $1 AND tenant_id IS NULL", class_code
        )
        facts: dict[str, Any] = {
            "calling_number": {
                "value": numbers[0],
                "raw": f"sip:{numbers[0]}@pbx.example.hu",
                "source": "from",
            },
            "called_number": {"value": numbers[1], "raw": f"sip:{numbers[1]}@pbx.example.hu", "source": "to"},
        }
        if direction is not None:
            facts["direction"] = {"value": direction, "raw": direction, "source": "broadworks:direction"}
        catalogue = Catalogue(self.pool)
        created = await catalogue.create(
            new_recording(
                id=uuid4(),
                started_at=started,
                call_id=f"{uuid4().hex}@pbx.example.hu",
                session_ids=[uuid4().hex],
                group_ids=[],
                call_facts=facts,
                tenant_id=self.tenant_id,
                basis=basis,
                statute="Fgytv. 17/B §" if basis == "legal_obligation" else None,
                purpose="customer service",
                retention_class_id=class_id,
                numbers=numbers,
                encryption=SEALED_FORMAT,
            )
        )
        data_key = await self.crypto.create_key(created.id, self.tenant_id)
        audio = call_audio(seconds, seed=len(self.plaintext))
        path = Path(str(self.blobs.path_for(created.id, started, "flac")) + ".sealed")
        stored_size = await asyncio.to_thread(_seal, path, data_key, audio)
        self.plaintext[created.id] = audio
        return await catalogue.finish(
            created.id,
            status=RecordingStatus.COMPLETE,
            ended_at=started + timedelta(seconds=seconds + 1.5),
            media_started_at=started + timedelta(milliseconds=180),
            duration_seconds=seconds,
            streams=received_streams(started),
            file_path=str(path),
            format="flac",
            size_bytes=stored_size,
            sha256=hashlib.sha256(audio).hexdigest(),
            expires_at=started + timedelta(days=60 if class_code == "quality_60d" else 1826),
            encryption=SEALED_FORMAT,
        )

    def worker(
        self,
        node: str = "node-a",
        *,
        transport: Any = None,
        concurrency: int = 4,
        spool: Path | None = None,
    ) -> DeliveryWorker:
        return DeliveryWorker(
            outbox=self.outbox,
            targets=self.targets,
            payloads=PayloadSource(
                self.pool, self.blobs, self.crypto, spool=spool or self.config.data_dir / "spool"
            ),
            transports={TargetKind.SFTP: transport or SftpTransport(connect_timeout=5.0)},
            copies=DeliveredCopies(self.pool, self.erasure, node=node),
            clock=self.clock,
            node=node,
            concurrency=concurrency,
            lease=LEASE,
            jitter=lambda: 0.5,
        )


def _seal(path: Path, data_key: bytes, audio: bytes) -> int:
    """The sealed file as the recorder leaves it: encrypted from the first byte; its size on disk."""
    with SealedWriter(path, data_key) as sealed:
        sealed.write(audio)
    return path.stat().st_size


@pytest.fixture
async def env(pg: PgCluster) -> AsyncIterator[Env]:
    with scratch_dir("hangtar-delivery-") as data_dir:
        dsn = await pg.create_database("delivery")
        config = load_config(environ={}, overrides={"data_dir": data_dir, "database_dsn": dsn})
        pool = await open_pool(dsn, max_size=8)
        try:
            await migrate(pool)
            clock = Clock(T0 - timedelta(hours=1))
            audit = AuditLog(clock=clock)
            provider = KeyFileProvider(config.key_file_path)
            blobs = FileBlobStore(config.recordings_dir)
            yield Env(
                config=config,
                pool=pool,
                clock=clock,
                tenant_id=await make_tenant(pool, "acme"),
                provider=provider,
                crypto=RecordingCrypto(pool, provider),
                blobs=blobs,
                targets=TargetStore(pool, provider, audit=audit, clock=clock),
                outbox=Outbox(pool, audit=audit, clock=clock),
                erasure=ErasureService(pool, blobs, audit=audit, clock=clock),
            )
        finally:
            await pool.close()
