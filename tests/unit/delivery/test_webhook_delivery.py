"""CRM forwarding end to end: the worker, a real catalogue with encrypted recordings, and a real HTTP receiver on
loopback (Starlette under uvicorn) that checks every request's signature with the documented snippet
(webhook_receiver.verify) and drops repeats by their idempotency key, as a CRM should. The download links are
followed through the API app with the download router mounted as the server mounts it. Time between passes is
skipped with the injected clock; nothing sleeps."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import io
import json
import socket
import stat
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from siprec_server.api import build_api, make_services
from siprec_server.delivery import DeliveryWorker, PayloadSource
from siprec_server.delivery.download_routes import build_router
from siprec_server.delivery.link_signing import LinkCheck, LinkSigner, load_link_key
from siprec_server.delivery.webhook import WebhookTransport, signature_header
from storage import Recording, open_pool
from storage.audit import AuditLog
from storage.delivery_copies import DeliveredCopies
from storage.delivery_items import AttemptResult, DeliveryStatus
from storage.delivery_outbox import Outbox
from storage.delivery_schedule import Schedule
from storage.delivery_settings import InsecureTargetError, TargetSettingsError, check_settings
from storage.delivery_targets import DeliveryTarget, TargetKind
from storage.holds import HoldService
from storage.models import parse_timestamp
from tests.unit.delivery.samples import OPERATOR
from tests.unit.storage.retention_samples import T0

from .conftest import LEASE, Env
from .test_cli_delivery import Hangtar
from .webhook_receiver import verify

SECRET = "whsec_3kQ9-CRM-acme-2026-Tavasz"
PUBLIC = "https://rec.example.hu"
DOCS = Path(__file__).resolve().parents[3] / "docs" / "delivery.md"


# -- the CRM ---------------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Received:
    event: str
    key: str
    content_type: str
    body: bytes
    signed: bool  # the signature verified
    status: int  # what the receiver answered
    duplicate: bool = False
    length: str | None = None  # the Content-Length header (None: chunked)
    form: dict[str, Any] = field(default_factory=dict)  # multipart: as Starlette's parser reads it

    def json(self) -> Any:
        return json.loads(self.body)


class _Embedded(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the test process keeps its own signal handling


class Crm:
    """A CRM's webhook endpoint: verifies the signature (401 otherwise), takes each idempotency key once
    (a repeat is answered 200 and dropped), and answers with the statuses queued in ``answers`` first.
    ``then_fail`` statuses are answered *after* the request was taken (the answer lost on the way back)."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.requests: list[Received] = []
        self.taken: dict[str, Received] = {}
        self.answers: list[int] = []
        self.then_fail: list[int] = []
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.app = Starlette(routes=[Route("/hooks/hangtar", self._hook, methods=["POST"])])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/hangtar?tenant=acme"

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        now = self.env.clock.now.timestamp()
        received = Received(
            event=request.headers.get("hangtar-event", ""),
            key=request.headers.get("hangtar-idempotency-key", ""),
            content_type=request.headers.get("content-type", ""),
            body=body,
            signed=verify(SECRET, request.headers.get("hangtar-signature", ""), body, now=now),
            status=200,
            length=request.headers.get("content-length"),
        )
        self.requests.append(received)
        if not received.signed:
            received.status = 401
        elif self.answers:
            received.status = self.answers.pop(0)
        elif received.key in self.taken:
            received.duplicate = True
        else:
            if received.content_type.startswith("multipart/form-data"):
                async with request.form() as form:
                    received.form = {
                        name: (value.filename, value.content_type, await value.read())
                        if isinstance(value, UploadFile)
                        else value
                        for name, value in form.multi_items()
                    }
            self.taken[received.key] = received
            if self.then_fail:
                received.status = self.then_fail.pop(0)
        if received.status >= 400:
            return JSONResponse({"error": "not now", "status": received.status}, status_code=received.status)
        return JSONResponse({"ok": True})

    async def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)  # connections queue in the kernel from here on: no readiness wait needed
        self.port = listener.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_level="warning", access_log=False, lifespan="off", ws="none", http="h11"
        )
        self._server = _Embedded(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[listener]))

    async def stop(self) -> None:
        assert self._server is not None and self._task is not None
        self._server.should_exit = True
        await self._task
        self._server = self._task = None


@pytest.fixture
async def crm(env: Env) -> AsyncIterator[Crm]:
    receiver = Crm(env)
    await receiver.start()
    try:
        yield receiver
    finally:
        if receiver._task is not None:
            await receiver.stop()


@pytest.fixture
def signer(env: Env) -> LinkSigner:
    return LinkSigner.from_data_dir(env.config.data_dir)


@pytest.fixture
async def api(env: Env, signer: LinkSigner) -> FastAPI:
    """The REST API as the server runs it, with the download router mounted under /api/v1."""
    services = make_services(
        env.pool,
        blobs=env.blobs,
        bundle_dir=env.config.data_dir / "access_requests",
        crypto=env.crypto,
        clock=env.clock,
    )
    app = build_api(services)
    app.include_router(build_router(signer), prefix="/api/v1")
    return app


@contextlib.asynccontextmanager
async def downloader(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The CRM fetching a link: through the app, as if at the public address."""
    transport = httpx.ASGITransport(app=app, client=("198.51.100.20", 44321))
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC) as client:
        yield client


async def crm_target(
    env: Env, crm: Crm, *, name: str = "crm", mode: str = "link", **options: Any
) -> DeliveryTarget:
    return await env.targets.create(
        env.tenant_id,
        kind="webhook",
        name=name,
        settings={"url": crm.url, "mode": mode, **options.pop("settings", {})},
        secret=SECRET,
        schedule=Schedule.every(300),
        actor=OPERATOR,
        **options,
    )


def webhook_worker(
    env: Env,
    signer: LinkSigner | None,
    *,
    node: str = "node-a",
    outbox: Outbox | None = None,
    pool: Any = None,
) -> DeliveryWorker:
    transport = WebhookTransport(signer=signer, public_base=PUBLIC, clock=env.clock, connect_timeout=5.0)
    own_pool = pool or env.pool
    return DeliveryWorker(
        outbox=outbox or env.outbox,
        targets=env.targets,
        payloads=PayloadSource(own_pool, env.blobs, env.crypto, spool=env.config.data_dir / f"spool-{node}"),
        transports={TargetKind.WEBHOOK: transport},
        copies=DeliveredCopies(own_pool, env.erasure, node=node),
        clock=env.clock,
        node=node,
        concurrency=4,
        lease=LEASE,
        jitter=lambda: 0.5,
    )


async def finished_calls(env: Env, count: int, seconds: float = 2.0) -> list[Recording]:
    env.clock.now = T0
    calls = [await env.add_recording(seconds=seconds) for _ in range(count)]
    env.clock.advance(minutes=5)
    return calls


# -- link mode -------------------------------------------------------------------------------------------------------
async def test_each_recording_is_forwarded_once_with_a_link_that_downloads_its_audio(
    env: Env, crm: Crm, signer: LinkSigner, api: FastAPI
) -> None:
    target = await crm_target(env, crm)
    calls = await finished_calls(env, 2)
    report = await webhook_worker(env, signer).run_once()
    assert (report.enqueued, report.delivered, report.retried, report.dead) == (2, 2, 0, 0)

    assert len(crm.requests) == 2 and all(r.signed and r.status == 200 for r in crm.requests)
    items = {i.recording_id: i for i in await env.outbox.items(target_id=target.id)}
    by_reference = {r.json()["reference"]: r for r in crm.requests}
    async with downloader(api) as client:
        for call in calls:
            received = by_reference[call.reference]
            document = received.json()
            assert received.event == "recording.finished" and received.content_type == "application/json"
            assert received.key == items[call.id].idempotency_key
            assert (document["format"], document["recording_id"], document["restricted"]) == (
                "hangtar-recording",
                str(call.id),
                False,
            )
            audio = document["audio"]
            assert (audio["format"], audio["bytes"]) == ("flac", len(env.plaintext[call.id]))
            assert audio["sha256"] == hashlib.sha256(env.plaintext[call.id]).hexdigest()
            assert audio["url_expires_at"] == "2026-12-05T14:08:07.000000Z"  # seven days after the pass
            link = urlsplit(audio["url"])
            assert f"{link.scheme}://{link.netloc}" == PUBLIC
            assert link.path == f"/api/v1/deliveries/{items[call.id].id}/audio"
            fetched = await client.get(audio["url"])
            assert fetched.status_code == 200 and fetched.headers["content-type"] == "audio/flac"
            assert fetched.content == env.plaintext[call.id]  # the audio itself, decrypted
            ranged = await client.get(audio["url"], headers={"Range": "bytes=100-199"})
            assert ranged.status_code == 206 and ranged.content == env.plaintext[call.id][100:200]

    downloads = await env.pool.fetch(
        "SELECT actor, origin, object_id FROM audit_log WHERE action = 'recording.download' ORDER BY seq"
    )
    assert [(d["actor"], d["origin"]) for d in downloads] == [("delivery:crm", "198.51.100.20")] * 2
    assert {d["object_id"] for d in downloads} == {
        str(c.id) for c in calls
    }  # the range was not audited again
    [entry] = await env.outbox.log(recording_id=calls[0].id)
    assert entry.result is AttemptResult.DELIVERED
    assert entry.remote_path == f"http://127.0.0.1:{crm.port}/hooks/hangtar"  # the query stays out of logs
    assert entry.sha256 == hashlib.sha256(by_reference[calls[0].reference].body).hexdigest()

    env.clock.advance(minutes=10)
    again = await webhook_worker(env, signer).run_once()
    assert (again.enqueued, again.delivered) == (0, 0) and len(crm.requests) == 2


async def test_an_expired_or_tampered_link_is_refused(
    env: Env, crm: Crm, signer: LinkSigner, api: FastAPI
) -> None:
    await crm_target(env, crm)
    first, second = await finished_calls(env, 2)
    await webhook_worker(env, signer).run_once()
    urls = {r.json()["recording_id"]: r.json()["audio"]["url"] for r in crm.requests}
    url = urlsplit(urls[str(first.id)])
    query = {name: values[0] for name, values in parse_qs(url.query).items()}
    other_id = int(urlsplit(urls[str(second.id)]).path.split("/")[4])
    sig = query["sig"]
    forged = sig[:10] + ("0" if sig[10] != "0" else "1") + sig[11:]
    later = str(int(query["expires"]) + 3600)
    async with downloader(api) as client:
        for path, params in [
            (url.path, {**query, "sig": forged}),  # one digit changed
            (url.path, {**query, "expires": later}),  # lived longer than signed
            (f"/api/v1/deliveries/{other_id}/audio", query),  # another delivery's audio with this signature
            (url.path, {"expires": query["expires"]}),  # no signature
            (url.path, {**query, "sig": sig + "00"}),
        ]:
            refused = await client.get(f"{path}?{urlencode(params)}")
            assert refused.status_code == 403, params
            assert refused.headers["content-type"] == "application/problem+json"
            assert first.reference not in refused.text
        assert (await client.get(urls[str(first.id)])).status_code == 200
        env.clock.advance(days=7, seconds=1)
        expired = await client.get(urls[str(first.id)])
        assert expired.status_code == 403 and "expired" in expired.json()["detail"]
    assert (
        await env.pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'recording.download'") == 1
    )  # only the one that was served


async def test_two_workers_on_one_outbox_forward_each_recording_once(
    env: Env, crm: Crm, signer: LinkSigner
) -> None:
    await crm_target(env, crm)
    calls = await finished_calls(env, 12, seconds=1.0)
    pool_b = await open_pool(env.config.database_dsn, max_size=8)  # node-b's own connections
    try:
        node_b = webhook_worker(
            env,
            signer,
            node="node-b",
            outbox=Outbox(pool_b, audit=AuditLog(clock=env.clock), clock=env.clock),
            pool=pool_b,
        )
        reports = await asyncio.gather(webhook_worker(env, signer).run_once(), node_b.run_once())
    finally:
        await pool_b.close()
    assert sum(r.delivered for r in reports) == 12 and sum(r.lost for r in reports) == 0
    assert len(crm.requests) == 12 and not any(r.duplicate for r in crm.requests)  # not even a repeat
    assert sorted(r.json()["reference"] for r in crm.taken.values()) == sorted(c.reference for c in calls)


async def test_a_503_is_retried_and_a_lost_answer_makes_no_duplicate(
    env: Env, crm: Crm, signer: LinkSigner
) -> None:
    await crm_target(env, crm)
    [call] = await finished_calls(env, 1)
    crm.answers = [503]  # the CRM is busy
    worker = webhook_worker(env, signer)
    assert (await worker.run_once()).retried == 1
    [waiting] = await env.outbox.items(status=DeliveryStatus.PENDING)
    assert "answered 503 Service Unavailable" in (waiting.last_error or "")
    assert '"error":"not now"' in (waiting.last_error or "")  # what it said, for the operator

    crm.then_fail = [502]  # takes the next one, but the answer is lost: from our side, a failure
    env.clock.advance(seconds=30)
    assert (await worker.run_once()).retried == 1
    env.clock.advance(minutes=1)
    assert (await worker.run_once()).delivered == 1  # the repeat is recognised by its key and dropped
    assert [(r.status, r.duplicate) for r in crm.requests] == [(503, False), (502, False), (200, True)]
    assert len({r.key for r in crm.requests}) == 1 and len(crm.taken) == 1
    assert crm.taken[waiting.idempotency_key].json()["reference"] == call.reference
    log = await env.outbox.log(recording_id=call.id)
    assert [a.result for a in reversed(log)] == [
        AttemptResult.RETRY,
        AttemptResult.RETRY,
        AttemptResult.DELIVERED,
    ]


async def test_a_receiver_down_is_retried_with_backoff_and_gets_everything_once_it_returns(
    env: Env, crm: Crm, signer: LinkSigner
) -> None:
    await crm_target(env, crm)
    calls = await finished_calls(env, 3)
    await crm.stop()  # connection refused from now on
    down_since = env.clock.now
    worker = webhook_worker(env, signer)
    passes = []
    while env.clock.now < down_since + timedelta(minutes=2):
        passes.append(await worker.run_once())
        env.clock.advance(seconds=20)
    assert sum(p.delivered for p in passes) == 0 and sum(p.dead for p in passes) == 0
    assert 3 * 2 <= sum(p.retried for p in passes) <= 3 * 4  # 22.5 s, 45 s, 90 s: not one per pass
    waiting = await env.outbox.items(status=DeliveryStatus.PENDING)
    assert len(waiting) == 3 and all(
        "cannot reach the webhook at http://127.0.0.1" in (i.last_error or "") for i in waiting
    )

    await crm.start()  # back on the same port
    env.clock.advance(minutes=3)
    assert (await worker.run_once()).delivered == 3
    assert sorted(r.json()["reference"] for r in crm.requests) == sorted(c.reference for c in calls)
    assert all(r.signed and not r.duplicate for r in crm.requests)


async def test_a_node_without_a_public_address_leaves_link_deliveries_for_another(env: Env, crm: Crm) -> None:
    await crm_target(env, crm)
    await finished_calls(env, 1)
    assert (await webhook_worker(env, None).run_once()).retried == 1
    [waiting] = await env.outbox.items(status=DeliveryStatus.PENDING)
    assert "no public address for download links" in (waiting.last_error or "")
    assert crm.requests == []


# -- inline mode -----------------------------------------------------------------------------------------------------
def multipart_parts(content_type: str, body: bytes) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a multipart/form-data body (RFC 7578), split by hand: headers and exact content."""
    boundary = content_type.split("boundary=", 1)[1].encode()
    assert body.endswith(b"\r\n--" + boundary + b"--\r\n")
    chunks = body[: -len(b"\r\n--" + boundary + b"--\r\n")].split(b"\r\n--" + boundary + b"\r\n")
    assert chunks[0].startswith(b"--" + boundary + b"\r\n")
    chunks[0] = chunks[0][len(b"--" + boundary + b"\r\n") :]
    parts = []
    for chunk in chunks:
        head, content = chunk.split(b"\r\n\r\n", 1)
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        parts.append(({k.lower(): v for k, v in headers.items()}, content))
    return parts


async def test_inline_mode_posts_the_metadata_and_the_audio_as_multipart(env: Env, crm: Crm) -> None:
    await crm_target(env, crm, mode="inline", settings={"name_template": "{date}_{direction}_{reference}"})
    [call] = await finished_calls(env, 1, seconds=6.0)
    assert (await webhook_worker(env, None).run_once()).delivered == 1  # inline needs no public address

    [received] = crm.requests
    assert received.signed and received.event == "recording.finished"
    (meta_headers, meta), (audio_headers, audio) = multipart_parts(received.content_type, received.body)
    name = f"{call.started_at:%Y-%m-%d}_inbound_{call.reference}.flac"
    assert meta_headers == {
        "content-disposition": 'form-data; name="metadata"',
        "content-type": "application/json",
    }
    assert audio_headers == {
        "content-disposition": f'form-data; name="audio"; filename="{name}"',
        "content-type": "audio/flac",
    }
    assert audio == env.plaintext[call.id]
    assert received.length == str(len(received.body))  # streamed, with its length announced
    document = json.loads(meta)
    assert document["reference"] == call.reference and "url" not in document["audio"]
    assert document["audio"] == {
        "file": name,
        "format": "flac",
        "channels": 2,
        "sample_rate": 8000,
        "bytes": len(audio),
        "sha256": hashlib.sha256(audio).hexdigest(),
    }
    # What a CRM's form parser makes of it.
    assert json.loads(received.form["metadata"]) == document
    assert received.form["audio"] == (name, "audio/flac", env.plaintext[call.id])
    [entry] = await env.outbox.log(recording_id=call.id)
    assert (entry.bytes, entry.sha256) == (len(audio), hashlib.sha256(audio).hexdigest())


# -- notices ---------------------------------------------------------------------------------------------------------
async def test_erasure_and_restriction_notices_reach_the_crm_and_the_link_is_gone(
    env: Env, crm: Crm, signer: LinkSigner, api: FastAPI
) -> None:
    await crm_target(env, crm)
    erased, held = await finished_calls(env, 2)
    worker = webhook_worker(env, signer)
    assert (await worker.run_once()).delivered == 2
    link = next(r.json()["audio"]["url"] for r in crm.requests if r.json()["reference"] == erased.reference)

    await env.erasure.erase(env.tenant_id, erased.id, OPERATOR, "erasure request ER-2026-0042")
    holds = HoldService(env.pool, audit=AuditLog(clock=env.clock), clock=env.clock)
    await holds.place_on_recording(env.tenant_id, held.id, reason="NAIH inquiry", actor=OPERATOR)
    env.clock.advance(minutes=1)
    report = await worker.run_once()
    assert (report.notices, report.delivered) == (2, 2)
    notices = {r.event: r for r in crm.requests[2:]}
    assert set(notices) == {"recording.erased", "recording.restricted"}
    assert all(r.signed and r.content_type == "application/json" for r in notices.values())
    assert notices["recording.erased"].json() == {
        "format": "hangtar-notice",
        "version": 1,
        "event": "erased",
        "recording_id": str(erased.id),
        "reference": erased.reference,
        "at": "2026-11-28T14:08:07.250000Z",
        "reason": "erasure_request",
        "copy": f"http://127.0.0.1:{crm.port}/hooks/hangtar",
    }
    assert notices["recording.restricted"].json()["reason"] == "legal_hold"
    assert len({r.key for r in crm.requests}) == 4  # each notice its own key, unlike the recording's

    async with downloader(api) as client:
        gone = await client.get(link)
    assert gone.status_code == 410 and erased.reference in gone.json()["detail"]


# -- failures no retry fixes, and the CLI --------------------------------------------------------------------------
async def test_a_400_is_a_dead_letter_with_the_status_and_replay_delivers_it(
    env: Env,
    crm: Crm,
    signer: LinkSigner,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hangtar = Hangtar(env, capsys)
    monkeypatch.setattr("sys.stdin", io.StringIO(SECRET + "\n"))
    added = await hangtar.json(
        "targets", "add", "--tenant", "acme", "--name", "crm", "--url", crm.url, "--mode", "inline",
        "--secret-file", "-", "--since", "2026-11-01",
    )  # fmt: skip
    assert added["kind"] == "webhook" and added["settings"]["mode"] == "inline" and added["has_secret"]
    code, shown, _ = await hangtar("targets", "show", "--tenant", "acme", "crm")
    assert code == 0 and "inline (multipart)" in shown and SECRET not in shown

    [call] = await finished_calls(env, 1)
    crm.answers = [400]
    assert (await webhook_worker(env, signer).run_once()).dead == 1
    [dead] = await hangtar.json("dead")
    assert dead["reference"] == call.reference
    assert "refused the delivery: 400 Bad Request" in dead["last_error"]
    assert SECRET not in dead["last_error"]

    replayed = await hangtar.json("replay", str(dead["id"]))
    assert replayed["status"] == "pending"
    env.clock.now = max(
        env.clock.now, parse_timestamp(replayed["next_attempt_at"])
    )  # the CLI's clock is real
    assert (await webhook_worker(env, signer).run_once()).delivered == 1
    assert [r.status for r in crm.requests] == [400, 200]
    assert crm.taken[dead["idempotency_key"]].form["audio"][2] == env.plaintext[call.id]


async def test_the_cli_refuses_webhooks_that_would_leak_or_break(
    env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    hangtar = Hangtar(env, capsys)
    monkeypatch.setattr("sys.stdin", io.StringIO(SECRET + "\n"))
    code, _, err = await hangtar(
        "targets", "add", "--tenant", "acme", "--name", "crm", "--url", "http://crm.example.hu/hook",
        "--secret-file", "-",
    )  # fmt: skip
    assert code == 4 and "plain http://" in err and "GDPR Art. 32" in err
    code, _, err = await hangtar(
        "targets", "add", "--tenant", "acme", "--name", "crm", "--url", "https://crm.example.hu/hook",
        "--delete-after-delivery", "--secret-file", "-",
    )  # fmt: skip
    assert code == 4 and "--mode inline" in err
    code, _, err = await hangtar(
        "targets", "add", "--tenant", "acme", "--name", "crm", "--url", "https://crm.example.hu/hook",
        "--key-file", "/etc/hostname",
    )  # fmt: skip
    assert code == 2 and "--key-file: not for a webhook target" in err
    assert await hangtar.json("targets", "list") == []


# -- settings, links and the receiver's check -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("settings", "error", "text"),
    [
        ({"url": "http://crm.example.hu/hook"}, InsecureTargetError, "use https://"),
        ({"url": "http://10.0.0.7:8080/hook"}, InsecureTargetError, "use https://"),
        ({"url": "ftp://crm.example.hu/in"}, InsecureTargetError, "plain FTP"),
        ({"url": "https://api:t0ken@crm.example.hu/hook"}, TargetSettingsError, "no user or password"),
        ({"url": "https://crm.example.hu/hook", "secret": SECRET}, TargetSettingsError, "not secret"),
        ({"url": "https:///hook"}, TargetSettingsError, "with a host"),
        ({"url": "https://crm.example.hu/hook", "mode": "push"}, TargetSettingsError, "'link'"),
        ({"url": "https://crm.example.hu/hook", "format": "wav"}, TargetSettingsError, "inline mode only"),
    ],
)
def test_webhook_settings_are_checked(settings: dict[str, str], error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        check_settings(TargetKind.WEBHOOK, settings)


def test_webhook_settings_completed_with_defaults() -> None:
    assert check_settings(TargetKind.WEBHOOK, {"url": "https://crm.example.hu/hangtar?tenant=acme"}) == {
        "url": "https://crm.example.hu/hangtar?tenant=acme",
        "mode": "link",
        "format": None,
        "name_template": "{date}_{time}_{reference}",
    }
    for loopback in ("http://127.0.0.1:9000/hook", "http://localhost/hook", "http://[::1]:9000/hook"):
        assert check_settings(TargetKind.WEBHOOK, {"url": loopback, "mode": "inline", "format": "wav"})


def test_the_link_key_is_made_once_private_and_shared_by_later_loads(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "delivery-link.key"
    key = load_link_key(path)
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_link_key(path) == key and list(path.parent.iterdir()) == [path]
    path.write_text("not hex\n")
    with pytest.raises(ValueError, match="64 hex digits"):
        load_link_key(path)


def test_a_link_opens_one_delivery_until_it_expires() -> None:
    signer = LinkSigner(key=bytes(range(32)))
    now = T0
    expires = signer.expiry(now)
    assert expires == int((now + timedelta(days=7)).timestamp())
    sig = signer.signature(41, expires)
    assert signer.check(41, str(expires), sig, now) is LinkCheck.VALID
    assert signer.check(41, str(expires), sig.upper(), now) is LinkCheck.VALID
    assert signer.check(42, str(expires), sig, now) is LinkCheck.BAD_SIGNATURE
    assert signer.check(41, str(expires), sig, now + timedelta(days=7)) is LinkCheck.EXPIRED
    assert signer.check(41, None, sig, now) is LinkCheck.MISSING
    assert signer.check(41, "-1", sig, now) is LinkCheck.MALFORMED
    assert signer.check(41, str(expires), sig[:-1], now) is LinkCheck.MALFORMED
    too_far = expires + 3600
    assert signer.check(41, str(too_far), signer.signature(41, too_far), now) is LinkCheck.TOO_FAR
    assert LinkSigner(key=bytes(32)).check(41, str(expires), sig, now) is LinkCheck.BAD_SIGNATURE


BODY = b'{"event":"erased","reference":"HT-7K3M-Q9RX"}'
NOW = 1_795_874_587


def test_the_receiver_check_accepts_our_signature_only() -> None:
    header = signature_header(SECRET, NOW, BODY)
    assert verify(SECRET, header, BODY, now=NOW + 12)
    assert not verify("whsec_someone-else", header, BODY, now=NOW)  # forged: signed with another secret
    assert not verify(SECRET, header, BODY.replace(b"Q9RX", b"Q9RY"), now=NOW)  # the body changed
    assert not verify(SECRET, header.replace(f"t={NOW}", f"t={NOW + 60}"), BODY, now=NOW + 60)  # restamped
    assert not verify(SECRET, header, BODY, now=NOW + 301)  # replayed later than the tolerance
    assert verify(SECRET, header, BODY, tolerance=600, now=NOW + 301)
    for broken in ("", "t=abc,v1=00", f"v1={'0' * 64}", f"t={NOW}", "garbage"):
        assert not verify(SECRET, broken, BODY, now=NOW)
    # A receiver that holds two secrets while the CRM rotates: several v1 values, one of them ours.
    rotated = f"{header},v1={'ab' * 32}"
    assert verify(SECRET, rotated, BODY, now=NOW)


def test_the_documented_snippet_is_the_tested_function() -> None:
    assert inspect.getsource(verify) in DOCS.read_text()
