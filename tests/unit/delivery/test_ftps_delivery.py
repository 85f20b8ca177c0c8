"""FTPS delivery end to end: the worker, a real catalogue with encrypted recordings, and Debian's vsftpd on
loopback with TLS required (certificates made for each test). Time between passes is skipped with the injected
clock; nothing sleeps."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import io
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, BinaryIO, cast

import pytest

from siprec_server.delivery import (
    DeliveryWorker,
    FtpsTransport,
    Notice,
    Payload,
    PayloadSource,
    Receipt,
    Transport,
)
from storage import Recording
from storage.delivery_copies import DeliveredCopies
from storage.delivery_items import AttemptResult, DeliveryItem, DeliveryStatus
from storage.delivery_schedule import Schedule
from storage.delivery_targets import DeliveryTarget, TargetKind
from tests.unit.delivery.samples import OPERATOR
from tests.unit.storage.retention_samples import CALLEE, CALLER, OTHER, T0

from .certs import Authority, Issued, self_signed
from .conftest import LEASE, Env
from .vsftpd import USER, USER_PASSWORD, Vsftpd, running_vsftpd

TEMPLATE = "{date}_{time}_{direction}_{caller}_{reference}"


@pytest.fixture(scope="module")
def authority() -> Authority:
    return Authority()


@pytest.fixture
def ftpd(authority: Authority) -> Iterator[Vsftpd]:
    """vsftpd with a certificate of the subscriber's CA for the address the target names."""
    with running_vsftpd(authority.issue("127.0.0.1", "files.example.hu")) as server:
        yield server


async def ftps_target(
    env: Env,
    server: Vsftpd,
    *,
    trust: str | None,
    name: str = "archive",
    secret: str = USER_PASSWORD,
    **settings: Any,
) -> DeliveryTarget:
    return await env.targets.create(
        env.tenant_id,
        kind="ftps",
        name=name,
        settings={
            "host": "127.0.0.1",
            "port": server.port,
            "username": USER,
            "remote_dir": "incoming",
            "name_template": TEMPLATE,
            "ca_certificates": trust,
            **settings,
        },
        secret=secret,
        schedule=Schedule.every(300),
        actor=OPERATOR,
    )


def worker(env: Env, node: str = "node-a", transport: Transport | None = None) -> DeliveryWorker:
    return DeliveryWorker(
        outbox=env.outbox,
        targets=env.targets,
        payloads=PayloadSource(env.pool, env.blobs, env.crypto, spool=env.config.data_dir / "spool"),
        transports={TargetKind.FTPS: transport or FtpsTransport(timeout=5.0)},
        copies=DeliveredCopies(env.pool, env.erasure, node=node),
        clock=env.clock,
        node=node,
        lease=LEASE,
        jitter=lambda: 0.5,
    )


def expected_name(recording: Recording, direction: str = "inbound", caller: str = CALLER) -> str:
    return f"{recording.started_at:%Y-%m-%d_%H%M%S}_{direction}_{caller}_{recording.reference}"


def audio_files(server: Vsftpd) -> dict[str, bytes]:
    return {name: data for name, data in server.files().items() if name.endswith(".flac")}


async def test_recordings_arrive_over_tls_with_their_names_bytes_and_hashes(
    env: Env, ftpd: Vsftpd, authority: Authority
) -> None:
    target = await ftps_target(env, ftpd, trust=authority.pem)
    env.clock.now = T0
    calls = [await env.add_recording(seconds=4.0), await env.add_recording(seconds=3.0)]
    calls.append(await env.add_recording(seconds=2.0, numbers=(OTHER, CALLEE), direction="outbound"))
    env.clock.advance(minutes=5)

    report = await worker(env).run_once()
    assert (report.enqueued, report.delivered, report.retried, report.dead) == (3, 3, 0, 0)

    files = ftpd.files()
    assert not [name for name in files if name.endswith(".part")]
    assert len(files) == 6
    for call in calls:
        direction, caller = ("outbound", OTHER) if call is calls[2] else ("inbound", CALLER)
        base = expected_name(call, direction, caller)
        audio = files[f"{base}.flac"]
        assert audio == env.plaintext[call.id]  # the audio itself, decrypted
        sidecar = json.loads(files[f"{base}.json"])
        assert sidecar["reference"] == call.reference and sidecar["direction"] == direction
        assert sidecar["audio"]["file"] == f"{base}.flac"
        assert sidecar["audio"]["bytes"] == len(audio)
        assert sidecar["audio"]["sha256"] == hashlib.sha256(audio).hexdigest()
    [entry] = await env.outbox.log(recording_id=calls[0].id)
    assert entry.result is AttemptResult.DELIVERED and entry.target_id == target.id
    assert entry.remote_path == f"incoming/{expected_name(calls[0])}.flac"
    assert entry.sha256 == hashlib.sha256(env.plaintext[calls[0].id]).hexdigest()

    # RFC 4217: TLS first, the login inside it, data connections protected; never a command in clear after.
    commands = ftpd.commands()
    assert commands[:3] == ["AUTH", "USER", "PASS"]
    assert commands.count("PROT") == commands.count("USER") >= 1
    assert "OK UPLOAD" in ftpd.log and "OK RENAME" in ftpd.log
    assert USER_PASSWORD not in ftpd.log

    # A later pass sends nothing again.
    env.clock.advance(minutes=10)
    again = await worker(env).run_once()
    assert (again.enqueued, again.delivered) == (0, 0) and ftpd.files() == files


@pytest.mark.parametrize(
    ("served", "trusted", "complaint"),
    [
        ("other-ca", "target-ca", "unable to get local issuer certificate"),
        ("other-ca", "system", "unable to get local issuer certificate"),
        ("wrong-name", "target-ca", "IP address mismatch"),
    ],
)
async def test_a_certificate_that_does_not_verify_is_refused_before_the_login(
    env: Env, authority: Authority, served: str, trusted: str, complaint: str
) -> None:
    certificate = (
        Authority("Impostor Root CA").issue("127.0.0.1")
        if served == "other-ca"
        else authority.issue("files.example.hu")  # the subscriber's CA, but for another name
    )
    with running_vsftpd(certificate) as server:
        await ftps_target(env, server, trust=authority.pem if trusted == "target-ca" else None)
        env.clock.now = T0
        call = await env.add_recording()
        env.clock.advance(minutes=5)
        report = await worker(env).run_once()
        assert (report.delivered, report.retried, report.dead) == (0, 0, 1)
        [item] = await env.outbox.items(recording_id=call.id)
        assert item.status is DeliveryStatus.DEAD and item.delivered_at is None
        error = item.last_error or ""
        assert "presented a certificate that does not verify" in error and complaint in error
        assert "--ca-file" in error and USER_PASSWORD not in error
        assert server.commands() == ["AUTH"]  # no USER, no PASS: the password never left
        assert server.files() == {}
        [entry] = await env.outbox.log(recording_id=call.id)
        assert entry.result is AttemptResult.DEAD and entry.remote_path is None


async def test_a_plain_ftp_server_is_refused_without_sending_the_password(env: Env) -> None:
    with running_vsftpd(None) as server:
        await ftps_target(env, server, trust=None)
        env.clock.now = T0
        call = await env.add_recording()
        env.clock.advance(minutes=5)
        report = await worker(env).run_once()
        assert (report.delivered, report.dead) == (0, 1)
        [item] = await env.outbox.items(recording_id=call.id)
        error = item.last_error or ""
        assert "does not offer TLS" in error and "530 Please login with USER and PASS" in error
        assert "GDPR Art. 32" in error
        assert server.commands() == ["AUTH"]
        assert server.files() == {}


async def test_a_refused_login_is_dead_at_once_and_the_password_is_not_in_the_reason(
    env: Env, ftpd: Vsftpd, authority: Authority
) -> None:
    await ftps_target(env, ftpd, trust=authority.pem, secret="Rossz-Jelszo-1")
    env.clock.now = T0
    await env.add_recording()
    env.clock.advance(minutes=5)
    report = await worker(env).run_once()
    assert (report.delivered, report.retried, report.dead) == (0, 0, 1)
    [dead] = await env.outbox.items(status=DeliveryStatus.DEAD)
    assert "refused the login of 'recftp' (530 Login incorrect.)" in (dead.last_error or "")
    assert "Rossz-Jelszo-1" not in (dead.last_error or "") and "Rossz-Jelszo-1" not in ftpd.log


async def test_a_server_down_then_up_gets_everything_once(
    env: Env, ftpd: Vsftpd, authority: Authority
) -> None:
    await ftps_target(env, ftpd, trust=authority.pem)
    env.clock.now = T0
    calls = [await env.add_recording() for _ in range(3)]
    env.clock.advance(minutes=5)
    ftpd.stop()
    down_since = env.clock.now
    node = worker(env)
    passes = []
    while env.clock.now < down_since + timedelta(minutes=2):
        passes.append(await node.run_once())
        env.clock.advance(seconds=20)
    assert sum(p.delivered for p in passes) == 0 and sum(p.dead for p in passes) == 0
    assert 3 * 2 <= sum(p.retried for p in passes) <= 3 * 4  # backed off, not retried at every pass
    waiting = await env.outbox.items(status=DeliveryStatus.PENDING)
    assert len(waiting) == 3
    assert all("cannot reach the FTPS server at 127.0.0.1" in (i.last_error or "") for i in waiting)

    ftpd.start()
    env.clock.advance(minutes=3)
    assert (await node.run_once()).delivered == 3
    assert audio_files(ftpd) == {f"{expected_name(c)}.flac": env.plaintext[c.id] for c in calls}
    assert sorted(ftpd.files()) == sorted(
        f"{expected_name(c)}.{ext}" for c in calls for ext in ("flac", "json")
    )
    log = await env.outbox.log(recording_id=calls[0].id)
    assert [a.result for a in reversed(log)] == [AttemptResult.RETRY] * (len(log) - 1) + [
        AttemptResult.DELIVERED
    ]


async def test_a_node_dying_after_the_rename_or_mid_upload_leaves_exactly_one_file(
    env: Env, ftpd: Vsftpd, authority: Authority
) -> None:
    target = await ftps_target(env, ftpd, trust=authority.pem)
    env.clock.now = T0
    renamed, cut_off = await env.add_recording(), await env.add_recording()
    env.clock.advance(minutes=5)
    await env.outbox.enqueue_due(env.clock.now)
    claimed = {item.recording_id: item for item in await env.outbox.claim("node-a", 10, LEASE)}
    # node-a uploads and renames the first, then dies before the outbox hears of it ...
    payloads = PayloadSource(env.pool, env.blobs, env.crypto, spool=env.config.data_dir / "spool")
    transport = FtpsTransport()
    async with payloads.payload(claimed[renamed.id], target) as payload:
        await transport.send(target, USER_PASSWORD, claimed[renamed.id], payload)
    await transport.aclose()
    first_copy = ftpd.home / "incoming" / f"{expected_name(renamed)}.flac"
    inode = first_copy.stat().st_ino
    uploads = ftpd.log.count("OK UPLOAD")
    # ... and had stored a third of the second when it died.
    torn = ftpd.home / "incoming" / f"{expected_name(cut_off)}.flac.part"
    torn.write_bytes(env.plaintext[cut_off.id][: len(env.plaintext[cut_off.id]) // 3])

    assert (await worker(env, "node-b").run_once()).delivered == 0  # node-a's lease still holds
    env.clock.advance(minutes=11)
    report = await worker(env, "node-b").run_once()
    assert report.delivered == 2
    assert audio_files(ftpd) == {
        f"{expected_name(renamed)}.flac": env.plaintext[renamed.id],
        f"{expected_name(cut_off)}.flac": env.plaintext[cut_off.id],
    }
    assert first_copy.stat().st_ino == inode  # recognised, not sent again
    # node-b stored: the second's audio, and both sidecars (written again on a repeat); not the first's audio
    assert ftpd.log.count("OK UPLOAD") - uploads == 3
    assert sorted(ftpd.files()) == sorted(
        f"{expected_name(r)}.{ext}" for r in (renamed, cut_off) for ext in ("flac", "json")
    )
    log = await env.outbox.log(recording_id=renamed.id)
    assert [(a.node, a.result) for a in reversed(log)] == [
        ("node-a", AttemptResult.ABANDONED),
        ("node-b", AttemptResult.DELIVERED),
    ]


class KillingMidUpload:
    """The real transport, but the FTP server is killed (-9) once the first part of the audio has gone out."""

    def __init__(self, server: Vsftpd) -> None:
        self._inner, self._server = FtpsTransport(timeout=5.0, chunk_size=64 * 1024), server

    async def send(
        self, target: DeliveryTarget, secret: str, item: DeliveryItem, payload: Payload
    ) -> Receipt:
        server = self._server

        @contextlib.contextmanager
        def open_then_kill() -> Iterator[BinaryIO]:
            with payload.open() as audio:
                yield cast(BinaryIO, _KillAtThirdRead(audio, server))

        return await self._inner.send(target, secret, item, dataclasses.replace(payload, open=open_then_kill))

    async def notify(
        self, target: DeliveryTarget, secret: str, item: DeliveryItem, notice: Notice
    ) -> Receipt:
        raise AssertionError("no notices here")

    async def aclose(self) -> None:
        await self._inner.aclose()


class _KillAtThirdRead(io.RawIOBase):
    def __init__(self, audio: BinaryIO, server: Vsftpd) -> None:
        super().__init__()
        self._audio, self._server, self._reads = audio, server, 0

    def read(self, size: int = -1) -> bytes:
        self._reads += 1
        if self._reads == 3:  # two blocks are stored or on their way: the server dies under the upload
            self._server.stop()
        return self._audio.read(size)


async def test_the_server_killed_mid_upload_ends_with_one_complete_file(
    env: Env, ftpd: Vsftpd, authority: Authority
) -> None:
    await ftps_target(env, ftpd, trust=authority.pem)
    env.clock.now = T0
    call = await env.add_recording(seconds=30.0)
    env.clock.advance(minutes=5)
    report = await worker(env, transport=KillingMidUpload(ftpd)).run_once()
    assert (report.delivered, report.retried, report.dead) == (0, 1, 0)
    [item] = await env.outbox.items(recording_id=call.id)
    assert (item.last_error or "").startswith("FTPS to 127.0.0.1:")
    name = expected_name(call)
    torn = ftpd.files()
    assert set(torn) == {f"{name}.flac.part"}  # the cut-off upload, never under the final name
    assert 0 < len(torn[f"{name}.flac.part"]) < len(env.plaintext[call.id])

    ftpd.start()
    env.clock.advance(minutes=1)
    assert (await worker(env).run_once()).delivered == 1
    assert sorted(ftpd.files()) == [f"{name}.flac", f"{name}.json"]
    assert ftpd.files()[f"{name}.flac"] == env.plaintext[call.id]


async def test_an_attempt_cut_short_by_the_worker_timeout_lets_go_of_its_connection_at_once(
    env: Env, ftpd: Vsftpd, authority: Authority
) -> None:
    target = await ftps_target(env, ftpd, trust=authority.pem)
    env.clock.now = T0
    call = await env.add_recording(seconds=30.0)
    env.clock.advance(minutes=5)
    await env.outbox.enqueue_due(env.clock.now)
    [item] = await env.outbox.claim("node-a", 1, LEASE)
    payloads = PayloadSource(env.pool, env.blobs, env.crypto, spool=env.config.data_dir / "spool")
    transport = FtpsTransport(timeout=120.0, chunk_size=16 * 1024)  # a hung server would hold a thread 2 min

    @contextlib.contextmanager
    def open_then_freeze(opener: Any) -> Iterator[BinaryIO]:
        with opener() as audio:
            yield cast(BinaryIO, _FreezeAtThirdRead(audio, ftpd))

    async with payloads.payload(item, target) as payload:
        frozen = dataclasses.replace(payload, open=lambda: open_then_freeze(payload.open))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(3.0):  # as the worker bounds an attempt, below its lease
                await transport.send(target, USER_PASSWORD, item, frozen)
    await transport.aclose()
    # The thread that was blocked on the hung connection is free now, not when its socket times out.
    async with asyncio.timeout(20.0):
        await asyncio.get_running_loop().shutdown_default_executor()
    assert f"{expected_name(call)}.flac" not in ftpd.files()  # never under the final name


class _FreezeAtThirdRead(io.RawIOBase):
    def __init__(self, audio: BinaryIO, server: Vsftpd) -> None:
        super().__init__()
        self._audio, self._server, self._reads = audio, server, 0

    def read(self, size: int = -1) -> bytes:
        self._reads += 1
        if self._reads == 3:
            self._server.freeze()
        return self._audio.read(size)


async def test_a_different_file_under_the_final_name_is_left_alone(
    env: Env, ftpd: Vsftpd, authority: Authority
) -> None:
    await ftps_target(env, ftpd, trust=authority.pem)
    env.clock.now = T0
    call = await env.add_recording()
    env.clock.advance(minutes=5)
    theirs = ftpd.home / "incoming" / f"{expected_name(call)}.flac"
    theirs.parent.mkdir()
    stranger = env.plaintext[call.id][:-1] + b"\x00"  # same size, other bytes
    theirs.write_bytes(stranger)
    report = await worker(env).run_once()
    assert (report.delivered, report.dead) == (0, 1)
    [dead] = await env.outbox.items(status=DeliveryStatus.DEAD)
    assert f"a different file already has the name incoming/{expected_name(call)}.flac" in (
        dead.last_error or ""
    )
    assert theirs.read_bytes() == stranger and sorted(ftpd.files()) == [theirs.name]


async def test_the_servers_own_certificate_may_be_trusted_in_place_of_its_ca(env: Env, ftpd: Vsftpd) -> None:
    served = (ftpd.root / "server.crt").read_text()  # as `openssl s_client -starttls ftp` shows it
    await ftps_target(env, ftpd, trust=served)
    env.clock.now = T0
    call = await env.add_recording()
    env.clock.advance(minutes=5)
    assert (await worker(env).run_once()).delivered == 1
    assert audio_files(ftpd) == {f"{expected_name(call)}.flac": env.plaintext[call.id]}


async def test_a_self_signed_server_certificate_given_as_the_trust_and_a_notice_beside_the_copy(
    env: Env,
) -> None:
    certificate: Issued = self_signed("127.0.0.1")
    with running_vsftpd(certificate) as server:
        await ftps_target(env, server, trust=certificate.certificate_text, remote_dir="archive/2026")
        env.clock.now = T0
        call = await env.add_recording()
        env.clock.advance(minutes=5)
        assert (await worker(env).run_once()).delivered == 1
        assert audio_files_in(server, "archive/2026") == {
            f"{expected_name(call)}.flac": env.plaintext[call.id]
        }

        await env.erasure.erase(env.tenant_id, call.id, OPERATOR, "erasure request ER-2026-0042")
        env.clock.advance(minutes=1)
        report = await worker(env).run_once()
        assert (report.notices, report.delivered) == (1, 1)
        files = server.files("archive/2026")
        notice = json.loads(files[f"{expected_name(call)}.erased.json"])
        assert (notice["event"], notice["reason"], notice["reference"]) == (
            "erased",
            "erasure_request",
            call.reference,
        )
        assert notice["copy"] == f"archive/2026/{expected_name(call)}.flac"
        assert f"{expected_name(call)}.flac" in files  # the recipient's copy is theirs to erase
        assert not [name for name in files if name.endswith(".part")]


def audio_files_in(server: Vsftpd, directory: str) -> dict[str, bytes]:
    return {name: data for name, data in server.files(directory).items() if name.endswith(".flac")}
