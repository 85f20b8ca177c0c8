"""SFTP delivery end to end: the worker, a real catalogue with encrypted recordings, and OpenSSH's sshd on
loopback. Time between passes is skipped with the injected clock; nothing sleeps."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

import pytest
import soundfile

from siprec_server.delivery import DeliveryWorker, PayloadSource, SftpTransport
from siprec_server.delivery.transport import Notice, Payload, Receipt
from storage import Recording, open_pool
from storage.audit import AuditLog
from storage.delivery_filter import DeliveryFilter
from storage.delivery_items import AttemptResult, DeliveryItem, DeliveryStatus
from storage.delivery_outbox import Outbox
from storage.delivery_schedule import Schedule
from storage.delivery_targets import DeliveryTarget, TargetKind
from storage.holds import HoldService
from tests.unit.delivery.samples import OPERATOR
from tests.unit.storage.retention_samples import CALLEE, CALLER, OTHER, T0

from .conftest import LEASE, Env
from .sshd import USER, USER_PASSWORD, Sshd, keygen

TEMPLATE = "{date}_{time}_{direction}_{caller}_{reference}"


async def sftp_target(
    env: Env,
    sshd: Sshd,
    *,
    name: str = "archive",
    auth: str = "key",
    host_key: str | None = None,
    secret: str | None = None,
    **options: Any,
) -> DeliveryTarget:
    settings = {
        "host": "127.0.0.1",
        "port": sshd.port,
        "username": USER,
        "remote_dir": "incoming",
        "host_key": host_key or sshd.host_key,
        "auth": auth,
        "name_template": TEMPLATE,
        **options.pop("settings", {}),
    }
    return await env.targets.create(
        env.tenant_id,
        kind="sftp",
        name=name,
        settings=settings,
        secret=secret or (sshd.client_key if auth == "key" else USER_PASSWORD),
        schedule=Schedule.every(300),
        actor=OPERATOR,
        **options,
    )


def expected_name(recording: Recording, direction: str = "inbound", caller: str = CALLER) -> str:
    return f"{recording.started_at:%Y-%m-%d_%H%M%S}_{direction}_{caller}_{recording.reference}"


def audio_files(sshd: Sshd) -> dict[str, bytes]:
    return {name: data for name, data in sshd.files().items() if name.endswith((".flac", ".wav"))}


async def test_recordings_arrive_decrypted_with_their_names_hashes_and_sidecars(env: Env, sshd: Sshd) -> None:
    target = await sftp_target(env, sshd)
    env.clock.now = T0
    calls = [await env.add_recording(seconds=4.0) for _ in range(2)]
    env.clock.advance(seconds=7)
    calls.append(await env.add_recording(seconds=2.0, numbers=(OTHER, CALLEE), direction="outbound"))
    env.clock.advance(minutes=5)

    report = await env.worker().run_once()
    assert (report.enqueued, report.delivered, report.retried, report.dead) == (3, 3, 0, 0)

    files = sshd.files()
    assert not [name for name in files if name.endswith(".part")]
    for call in calls:
        direction, caller = ("outbound", OTHER) if call is calls[2] else ("inbound", CALLER)
        base = expected_name(call, direction, caller)
        audio = files[f"{base}.flac"]
        assert audio == env.plaintext[call.id]  # the audio itself, never the sealed file
        sidecar = json.loads(files[f"{base}.json"])
        assert sidecar["reference"] == call.reference and sidecar["recording_id"] == str(call.id)
        assert sidecar["audio"] == {
            "file": f"{base}.flac",
            "format": "flac",
            "channels": 2,
            "sample_rate": 8000,
            "bytes": len(audio),
            "sha256": hashlib.sha256(audio).hexdigest(),
        }
        assert sidecar["caller"]["number"] == caller and sidecar["direction"] == direction
        assert (sidecar["basis"], sidecar["retention_class"], sidecar["restricted"]) == (
            "legitimate_interest",
            "quality_60d",
            False,
        )
    [entry] = await env.outbox.log(recording_id=calls[0].id)
    assert entry.result is AttemptResult.DELIVERED and entry.node == "node-a"
    assert entry.remote_path == f"incoming/{expected_name(calls[0])}.flac"
    assert entry.sha256 == hashlib.sha256(env.plaintext[calls[0].id]).hexdigest()
    assert entry.bytes == len(env.plaintext[calls[0].id])
    actions = [r["action"] for r in await env.pool.fetch("SELECT action FROM audit_log ORDER BY seq")]
    assert actions.count("recording.deliver") == 3

    # What arrived is what `hangtar recordings export` hands a user.
    exported = env.config.data_dir / "export.flac"
    done = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "siprec_server",
            "recordings",
            "export",
            calls[0].reference,
            "-o",
            str(exported),
            "--data-dir",
            str(env.config.data_dir),
            "--database-dsn",
            env.config.database_dsn,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert exported.read_bytes() == files[f"{expected_name(calls[0])}.flac"]

    # A later pass sends nothing again.
    env.clock.advance(minutes=10)
    again = await env.worker().run_once()
    assert (again.enqueued, again.delivered) == (0, 0) and sshd.files() == files
    assert target.id == entry.target_id


async def test_a_password_login_and_a_refused_one(env: Env, sshd: Sshd) -> None:
    await sftp_target(env, sshd, name="by-password", auth="password")
    await sftp_target(
        env,
        sshd,
        name="wrong-password",
        auth="password",
        secret="Rossz-Jelszo-1",
        settings={"remote_dir": "other"},
    )
    env.clock.now = T0
    call = await env.add_recording()
    env.clock.advance(minutes=5)
    report = await env.worker().run_once()
    assert (report.delivered, report.dead) == (1, 1)
    assert audio_files(sshd) == {f"{expected_name(call)}.flac": env.plaintext[call.id]}
    [dead] = await env.outbox.items(status=DeliveryStatus.DEAD)
    assert "refused the login of 'recsftp' by password" in (dead.last_error or "")
    assert "Rossz-Jelszo-1" not in (dead.last_error or "")


async def test_an_unknown_host_key_is_refused_before_anything_is_sent(env: Env, sshd: Sshd) -> None:
    impostor = keygen(env.config.data_dir / "other_host", "files.example.hu")
    await sftp_target(env, sshd, auth="password", host_key=impostor)
    env.clock.now = T0
    await env.add_recording()
    env.clock.advance(minutes=5)
    report = await env.worker().run_once()
    assert (report.delivered, report.retried, report.dead) == (0, 0, 1)
    [dead] = await env.outbox.items(status=DeliveryStatus.DEAD)
    assert "did not present the pinned host key (ssh-ed25519)" in (dead.last_error or "")
    assert "ssh-keyscan" in (dead.last_error or "")
    assert sshd.files() == {}
    assert "Accepted" not in sshd.log and "Failed password" not in sshd.log  # no login was even tried


async def test_a_target_down_for_two_minutes_gets_everything_once_when_it_returns(
    env: Env, sshd: Sshd
) -> None:
    await sftp_target(env, sshd)
    env.clock.now = T0
    calls = [await env.add_recording() for _ in range(3)]
    env.clock.advance(minutes=5)
    sshd.stop()
    down_since = env.clock.now
    worker = env.worker()
    passes = []
    while env.clock.now < down_since + timedelta(minutes=2):
        passes.append(await worker.run_once())
        env.clock.advance(seconds=20)
    assert sum(p.delivered for p in passes) == 0 and sum(p.dead for p in passes) == 0
    retried = sum(p.retried for p in passes)
    assert 3 * 2 <= retried <= 3 * 4  # backoff: 22.5 s, 45 s, 90 s with this jitter, not one per pass
    waiting = await env.outbox.items(status=DeliveryStatus.PENDING)
    assert len(waiting) == 3 and all("cannot reach the SFTP server" in (i.last_error or "") for i in waiting)

    sshd.start()
    env.clock.advance(minutes=3)
    back = await worker.run_once()
    assert back.delivered == 3
    assert audio_files(sshd) == {f"{expected_name(c)}.flac": env.plaintext[c.id] for c in calls}
    log = await env.outbox.log(recording_id=calls[0].id)
    assert [a.result for a in reversed(log)] == [AttemptResult.RETRY] * (len(log) - 1) + [
        AttemptResult.DELIVERED
    ]


async def test_a_node_dying_after_the_rename_or_mid_upload_leaves_exactly_one_file(
    env: Env, sshd: Sshd
) -> None:
    target = await sftp_target(env, sshd)
    env.clock.now = T0
    renamed, cut_off = await env.add_recording(), await env.add_recording()
    env.clock.advance(minutes=5)
    await env.outbox.enqueue_due(env.clock.now)
    claimed = {item.recording_id: item for item in await env.outbox.claim("node-a", 10, LEASE)}
    # node-a uploads and renames the first, then dies before the outbox hears of it.
    payloads = PayloadSource(env.pool, env.blobs, env.crypto, spool=env.config.data_dir / "spool")
    transport = SftpTransport()
    async with payloads.payload(claimed[renamed.id], target) as payload:
        await transport.send(target, sshd.client_key, claimed[renamed.id], payload)
    await transport.aclose()
    first_copy = sshd.home / "incoming" / f"{expected_name(renamed)}.flac"
    inode = first_copy.stat().st_ino
    # ... and had written a third of the second when it died.
    torn = sshd.home / "incoming" / f"{expected_name(cut_off)}.flac.part"
    torn.write_bytes(env.plaintext[cut_off.id][: len(env.plaintext[cut_off.id]) // 3])

    assert (await env.worker("node-b").run_once()).delivered == 0  # node-a's lease still holds
    env.clock.advance(minutes=11)
    report = await env.worker("node-b").run_once()
    assert report.delivered == 2
    assert audio_files(sshd) == {
        f"{expected_name(renamed)}.flac": env.plaintext[renamed.id],
        f"{expected_name(cut_off)}.flac": env.plaintext[cut_off.id],
    }
    assert first_copy.stat().st_ino == inode  # recognised, not sent again
    assert sorted(sshd.files()) == sorted(
        [f"{expected_name(r)}.{ext}" for r in (renamed, cut_off) for ext in ("flac", "json")]
    )
    log = await env.outbox.log(recording_id=renamed.id)
    assert [(a.node, a.result) for a in reversed(log)] == [
        ("node-a", AttemptResult.ABANDONED),
        ("node-b", AttemptResult.DELIVERED),
    ]


class KillingMidUpload:
    """The real transport, but the server is killed (-9) once the first part of the audio has gone out."""

    def __init__(self, sshd: Sshd) -> None:
        self._inner, self._sshd = SftpTransport(chunk_size=64 * 1024), sshd

    async def send(
        self, target: DeliveryTarget, secret: str, item: DeliveryItem, payload: Payload
    ) -> Receipt:
        sshd = self._sshd

        @contextlib.contextmanager
        def open_then_kill() -> Iterator[BinaryIO]:
            with payload.open() as audio:
                yield _KillAfterFirstRead(audio, sshd)

        return await self._inner.send(target, secret, item, dataclasses.replace(payload, open=open_then_kill))

    async def notify(
        self, target: DeliveryTarget, secret: str, item: DeliveryItem, notice: Notice
    ) -> Receipt:
        raise AssertionError("no notices here")

    async def aclose(self) -> None:
        await self._inner.aclose()


class _KillAfterFirstRead(io.RawIOBase):
    def __init__(self, audio: BinaryIO, sshd: Sshd) -> None:
        super().__init__()
        self._audio, self._sshd, self._reads = audio, sshd, 0

    def read(self, size: int = -1) -> bytes:
        self._reads += 1
        if self._reads == 3:  # two chunks are on their way: the server dies under the upload
            self._sshd.kill()
        return self._audio.read(size)


async def test_the_server_killed_mid_upload_ends_with_one_complete_file(env: Env, sshd: Sshd) -> None:
    await sftp_target(env, sshd)
    env.clock.now = T0
    call = await env.add_recording(seconds=30.0)
    env.clock.advance(minutes=5)
    report = await env.worker(transport=KillingMidUpload(sshd)).run_once()
    assert (report.delivered, report.retried) == (0, 1)
    [item] = await env.outbox.items(recording_id=call.id)
    assert "SFTP" in (item.last_error or "") or "cannot reach" in (item.last_error or "")
    name = expected_name(call)
    assert set(sshd.files()) <= {f"{name}.flac.part"}  # at most the torn upload, never under the final name

    sshd.start()
    env.clock.advance(minutes=1)
    assert (await env.worker().run_once()).delivered == 1
    assert sorted(sshd.files()) == [f"{name}.flac", f"{name}.json"]
    assert sshd.files()[f"{name}.flac"] == env.plaintext[call.id]


class Counting:
    """A transport that counts what it is asked to send, then lets the real one send it."""

    def __init__(self, inner: SftpTransport, sent: list[str]) -> None:
        self._inner, self._sent = inner, sent

    async def send(
        self, target: DeliveryTarget, secret: str, item: DeliveryItem, payload: Payload
    ) -> Receipt:
        self._sent.append(payload.reference)
        return await self._inner.send(target, secret, item, payload)

    async def notify(
        self, target: DeliveryTarget, secret: str, item: DeliveryItem, notice: Notice
    ) -> Receipt:
        return await self._inner.notify(target, secret, item, notice)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_two_nodes_on_one_outbox_deliver_each_recording_once(env: Env, sshd: Sshd) -> None:
    await sftp_target(env, sshd)
    env.clock.now = T0
    calls = [await env.add_recording(seconds=1.0) for _ in range(16)]
    env.clock.advance(minutes=5)
    sent_a: list[str] = []
    sent_b: list[str] = []
    pool_b = await open_pool(env.config.database_dsn, max_size=8)  # node-b's own connections
    try:
        node_b = DeliveryWorker(
            outbox=Outbox(pool_b, audit=AuditLog(clock=env.clock), clock=env.clock),
            targets=env.targets,
            payloads=PayloadSource(pool_b, env.blobs, env.crypto, spool=env.config.data_dir / "spool-b"),
            transports={TargetKind.SFTP: Counting(SftpTransport(), sent_b)},
            clock=env.clock,
            node="node-b",
            concurrency=4,
            lease=LEASE,
        )
        node_a = env.worker("node-a", transport=Counting(SftpTransport(), sent_a))
        reports = await asyncio.gather(node_a.run_once(), node_b.run_once())
    finally:
        await pool_b.close()
    assert sum(r.delivered for r in reports) == 16 and sum(r.lost for r in reports) == 0
    assert sorted(sent_a + sent_b) == sorted(c.reference for c in calls)  # each once, whichever node
    assert len(audio_files(sshd)) == 16


async def test_a_filtered_target_gets_only_its_calls(env: Env, sshd: Sshd) -> None:
    await sftp_target(env, sshd, filter=DeliveryFilter.of(numbers=["+36 20 555 0123"], direction="outbound"))
    env.clock.now = T0
    wanted = await env.add_recording(numbers=(OTHER, CALLEE), direction="outbound")
    await env.add_recording(numbers=(OTHER, CALLEE), direction="inbound")
    await env.add_recording(numbers=(CALLER, CALLEE), direction="outbound")
    env.clock.advance(minutes=5)
    assert (await env.worker().run_once()).delivered == 1
    assert list(audio_files(sshd)) == [f"{expected_name(wanted, 'outbound', OTHER)}.flac"]


async def test_delete_after_delivery_keeps_what_a_hold_or_a_statute_keeps(env: Env, sshd: Sshd) -> None:
    await sftp_target(env, sshd, delete_after_delivery=True)
    env.clock.now = T0
    plain = await env.add_recording()
    held = await env.add_recording()
    statutory = await env.add_recording(class_code="utility_customer_service", basis="legal_obligation")
    await HoldService(env.pool, audit=AuditLog(clock=env.clock), clock=env.clock).place_on_recording(
        env.tenant_id, held.id, reason="NAIH inquiry 2026/0815", actor=OPERATOR
    )
    env.clock.advance(minutes=5)
    report = await env.worker().run_once()
    assert report.delivered == 3 and (report.copies.erased, report.copies.kept) == (1, 2)
    assert len(audio_files(sshd)) == 3  # the recipient has all three
    left = {row["id"] for row in await env.pool.fetch("SELECT id FROM recordings")}
    assert left == {held.id, statutory.id}
    assert plain.file_path is not None and not await asyncio.to_thread(Path(plain.file_path).exists)
    notes = {i.recording_id: i.copy_note or "" for i in await env.outbox.items() if not i.kind.notice}
    assert "legal hold" in notes[held.id] and "Art. 17(3)(b)" in notes[statutory.id]
    sidecar = json.loads(sshd.files()[f"{expected_name(held)}.json"])
    assert sidecar["restricted"] is True


async def test_erasure_and_restriction_notices_are_written_beside_the_copy(env: Env, sshd: Sshd) -> None:
    await sftp_target(env, sshd)
    env.clock.now = T0
    erased, held = await env.add_recording(), await env.add_recording()
    env.clock.advance(minutes=5)
    assert (await env.worker().run_once()).delivered == 2
    await env.erasure.erase(env.tenant_id, erased.id, OPERATOR, "erasure request ER-2026-0042")
    holds = HoldService(env.pool, audit=AuditLog(clock=env.clock), clock=env.clock)
    await holds.place_on_recording(env.tenant_id, held.id, reason="NAIH inquiry", actor=OPERATOR)
    env.clock.advance(minutes=1)
    report = await env.worker().run_once()
    assert (report.notices, report.delivered) == (2, 2)
    files = sshd.files()
    notice = json.loads(files[f"{expected_name(erased)}.erased.json"])
    assert notice == {
        "format": "hangtar-notice",
        "version": 1,
        "event": "erased",
        "recording_id": str(erased.id),
        "reference": erased.reference,
        "at": "2026-11-28T14:08:07.250000Z",
        "reason": "erasure_request",
        "copy": f"incoming/{expected_name(erased)}.flac",
        "file": f"{expected_name(erased)}.flac",
    }
    restricted = json.loads(files[f"{expected_name(held)}.restricted.json"])
    assert (restricted["event"], restricted["reason"]) == ("restricted", "legal_hold")
    assert f"{expected_name(erased)}.flac" in files  # the recipient's copy is theirs to erase


async def test_a_target_format_is_encoded_for_it_and_the_spool_emptied(env: Env, sshd: Sshd) -> None:
    await sftp_target(env, sshd, settings={"format": "wav"})
    env.clock.now = T0
    call = await env.add_recording(seconds=2.0)
    env.clock.advance(minutes=5)
    spool = env.config.data_dir / "spool"
    spool.mkdir()
    (spool / f"{call.id}.0badc0ffee00.wav").write_bytes(b"left by a process that died mid-encode")
    assert await PayloadSource(env.pool, env.blobs, env.crypto, spool=spool).clear_spool() == 1
    assert (await env.worker(spool=spool).run_once()).delivered == 1
    wav = sshd.home / "incoming" / f"{expected_name(call)}.wav"
    info = soundfile.info(str(wav))
    assert (info.format, info.channels, info.samplerate, round(info.duration, 2)) == ("WAV", 2, 8000, 2.0)
    sidecar = json.loads(sshd.files()[f"{expected_name(call)}.json"])
    assert sidecar["audio"]["format"] == "wav"
    assert sidecar["audio"]["sha256"] == hashlib.sha256(wav.read_bytes()).hexdigest()
    assert list(spool.iterdir()) == []


@pytest.mark.parametrize("settings", [{"remote_dir": "/proc/forbidden"}])
async def test_a_directory_the_account_cannot_use_is_dead_with_the_reason(
    env: Env, sshd: Sshd, settings: dict[str, str]
) -> None:
    await sftp_target(env, sshd, settings=settings)
    env.clock.now = T0
    await env.add_recording()
    env.clock.advance(minutes=5)
    report = await env.worker().run_once()
    assert report.dead == 1
    [dead] = await env.outbox.items(status=DeliveryStatus.DEAD)
    assert "check remote_dir" in (dead.last_error or "")
