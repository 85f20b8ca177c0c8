"""Recordings through the API on the real catalogue, with real FLAC audio sealed by the real key file: search,
detail, playback with byte ranges, download, retention, holds; the role matrix and the cross-tenant answers."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import pytest

from siprec_server.api import ApiServices
from siprec_server.sealing import open_stored, plain_stored_file, seal_plain_file
from storage import NewRecording, Recording, RecordingStatus
from storage.lifecycle_rows import find_class
from storage.principal import ROLE_PERMISSIONS, Permission, Role
from storage.retention import expiry
from storage.sealed import SEALED_FORMAT
from storage.tenant_models import Tenant
from tests.unit.storage.retention_samples import write_tone_flac
from tests.unit.storage.samples import CALLEE, CALLER, METADATA, received_streams

from .conftest import OPERATOR, Account

AsUser = Callable[[Role], Awaitable[httpx.AsyncClient]]
AsKey = Callable[[Role], Awaitable[httpx.AsyncClient]]
AsOther = Callable[[], Awaitable[httpx.AsyncClient]]

T0 = datetime(2026, 11, 28, 14, 3, 7, 250_000, tzinfo=UTC)  # before the app clock's 2026-12-01 09:00
LANDLINE = "+3612345678"  # as the metadata normaliser stored the caller


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    recording: Recording
    audio: bytes  # the plaintext FLAC, as recorded

    @property
    def ref(self) -> str:
        return self.recording.reference


async def record_call(
    api: ApiServices,
    tenant: Tenant,
    *,
    started_at: datetime = T0,
    numbers: tuple[str, ...] = (LANDLINE, "+36301234567"),
    sealed: bool = True,
    seconds: float = 20.0,
    basis: str = "legitimate_interest",
    class_code: str = "quality_60d",
    status: RecordingStatus = RecordingStatus.COMPLETE,
) -> Call:
    """A call as the server leaves it at hang-up: catalogue row with its lifecycle columns, the FLAC sealed
    with a fresh data key (the plaintext removed), or kept plain as before encryption existed."""
    assert api.blobs is not None and api.crypto is not None
    retention = await find_class(api.pool, tenant.id, class_code)
    created = await api.catalogue.create(
        NewRecording(
            call_id=f"{uuid4().hex}@pbx.example.hu",
            started_at=started_at,
            session_ids=[secrets.token_urlsafe(16)],
            participants=[CALLER, CALLEE],
            channels=2,
            sample_rate=8000,
            format="flac",
            raw_metadata=METADATA,
            source_address="udp:192.0.2.10:5060",
            call_facts={
                "direction": {"value": "inbound", "raw": "termCall", "source": "broadworks:callType"}
            },
            tenant_id=tenant.id,
            basis=basis,
            statute="Fgytv. 17/B §" if basis == "legal_obligation" else None,
            purpose="customer service",
            retention_class_id=retention.id,
            expires_at=expiry(started_at, retention.days),
            numbers=numbers,
        )
    )
    audio = b""
    stored = None
    if status is not RecordingStatus.NO_MEDIA:
        plain = api.blobs.path_for(created.id, started_at, "flac")
        write_tone_flac(plain, seconds=seconds)
        audio = plain.read_bytes()
        if sealed:
            key = await api.crypto.create_key(created.id, tenant.id)
            stored = await asyncio.to_thread(seal_plain_file, plain, key)
            plain.unlink()
        else:
            stored = plain_stored_file(plain)
    recording = await api.catalogue.finish(
        created.id,
        status=status,
        ended_at=started_at + timedelta(seconds=94.5),
        media_started_at=None if stored is None else started_at + timedelta(milliseconds=180),
        duration_seconds=94.3,
        streams=received_streams(started_at),
        file_path=None if stored is None else str(stored.path),
        format="flac",
        size_bytes=None if stored is None else stored.size_bytes,
        sha256=None if stored is None else stored.sha256,
        encryption=None if stored is None else stored.encryption,
    )
    return Call(recording=recording, audio=audio)


@pytest.fixture
async def call(api_services: ApiServices, tenant: Tenant) -> Call:
    return await record_call(api_services, tenant)


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["detail"]
    return body


async def audit_rows(pool: asyncpg.Pool, action: str) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT * FROM audit_log WHERE action = $1 ORDER BY seq", action)  # type: ignore[no-any-return]


# -- the role matrix ------------------------------------------------------------------------------------------------
# Every endpoint: (method, path, body, the permission it needs, success status).
ENDPOINTS = [
    ("GET", "/api/v1/recordings", None, Permission.VIEW, 200),
    ("GET", "/api/v1/recordings/{ref}", None, Permission.VIEW, 200),
    ("GET", "/api/v1/recordings/{ref}/audio", None, Permission.LISTEN, 200),
    ("GET", "/api/v1/recordings/{ref}/download", None, Permission.LISTEN, 200),
    (
        "PUT",
        "/api/v1/recordings/{ref}/retention",
        {"retention_class": "contract_evidence"},
        Permission.RETENTION,
        200,
    ),
    ("GET", "/api/v1/retention-options", None, Permission.VIEW, 200),
    (
        "POST",
        "/api/v1/recordings/{ref}/holds",
        {"reason": "complaint 2026/118 under review"},
        Permission.HOLD,
        201,
    ),
]
RECORDING_ENDPOINTS = [e for e in ENDPOINTS if "{ref}" in e[1]]


@pytest.mark.parametrize("credential", ["session", "api_key"])
@pytest.mark.parametrize("role", list(Role))
async def test_each_role_reaches_exactly_the_endpoints_its_permissions_allow(
    role: Role, credential: str, as_user: AsUser, as_key: AsKey, call: Call
) -> None:
    client = await (as_user(role) if credential == "session" else as_key(role))
    for method, path, body, permission, success in ENDPOINTS:
        response = await client.request(method, path.format(ref=call.ref), json=body)
        if permission in ROLE_PERMISSIONS[role]:
            assert response.status_code == success, (method, path, response.text)
        else:
            assert "may not do this" in problem(response, 403)["detail"], (method, path)


async def test_without_credentials_every_endpoint_is_401(
    make_client: Callable[[], httpx.AsyncClient], call: Call, pool: asyncpg.Pool
) -> None:
    client = make_client()
    for method, path, body, _, _ in ENDPOINTS:
        problem(await client.request(method, path.format(ref=call.ref), json=body), 401)
    assert await audit_rows(pool, "recording.play") == []


async def test_a_cookie_session_changes_nothing_without_its_csrf_token(as_user: AsUser, call: Call) -> None:
    client = await as_user(Role.ADMIN)
    del client.headers["X-CSRF-Token"]
    for method, path, body, _, _ in ENDPOINTS:
        if method != "GET":
            problem(await client.request(method, path.format(ref=call.ref), json=body), 403)


async def test_another_tenants_recording_is_404_like_a_missing_one_and_audited(
    as_other_admin: AsOther, other_admin: Account, call: Call, pool: asyncpg.Pool
) -> None:
    client = await as_other_admin()
    for key in (call.ref, call.ref.lower(), str(call.recording.id)):
        for method, path, body, _, _ in RECORDING_ENDPOINTS:
            foreign = problem(await client.request(method, path.format(ref=key), json=body), 404)
            missing = problem(await client.request(method, path.format(ref="HT-0000-0000"), json=body), 404)
            assert {**foreign, "instance": None} == {**missing, "instance": None}
    denied = await audit_rows(pool, "recording.access_denied")
    foreign_rows = [row for row in denied if row["object_id"] in (call.ref, str(call.recording.id))]
    assert len(foreign_rows) == 3 * len(RECORDING_ENDPOINTS)
    for row in foreign_rows:
        assert row["tenant_id"] == other_admin.tenant.id and row["actor"] == other_admin.email
        assert row["origin"] == "203.0.113.7"
    # Nothing leaked into the owner's data: no hold, no change, no playback.
    assert await pool.fetchval("SELECT count(*) FROM holds") == 0
    assert await audit_rows(pool, "recording.play") == [] and await audit_rows(pool, "retention.change") == []
    listed = (await client.get("/api/v1/recordings", params={"number": "06 1 234 5678"})).json()
    assert listed == {"items": [], "next_cursor": None}


# -- search and detail ----------------------------------------------------------------------------------------------
async def test_search_by_a_number_as_people_write_it_finds_the_call_recorded_in_e164(
    as_key: AsKey, api_services: ApiServices, tenant: Tenant, call: Call
) -> None:
    await record_call(api_services, tenant, numbers=("+3613456789",), started_at=T0 + timedelta(hours=1))
    client = await as_key(Role.VIEWER)
    for written in ("06 1 234 5678", "+36 1 234 5678", "0036 1 234 5678", "tel:+36-1-234-5678"):
        response = await client.get("/api/v1/recordings", params={"number": written})
        assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
        items = response.json()["items"]
        assert [item["reference"] for item in items] == [call.ref]
        assert items[0]["numbers"] == [LANDLINE, "+36301234567"] and items[0]["direction"] == "inbound"
        assert items[0]["participants"][0] == {
            "aor": "sip:+3612345678@pbx.example.hu",
            "name": "Kovács Éva",
            "role": "caller",
        }
    by_participant = await client.get("/api/v1/recordings", params={"participant": "szabó"})
    assert len(by_participant.json()["items"]) == 2
    by_reference = await client.get("/api/v1/recordings", params={"reference": call.ref.lower()})
    assert [item["id"] for item in by_reference.json()["items"]] == [str(call.recording.id)]


async def test_cursor_pages_through_every_recording_once(
    as_key: AsKey, api_services: ApiServices, tenant: Tenant
) -> None:
    made = [
        (
            await record_call(api_services, tenant, started_at=T0 + timedelta(minutes=i // 2), seconds=1)
        ).recording
        for i in range(5)
    ]
    client = await as_key(Role.VIEWER)
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        page = (await client.get("/api/v1/recordings", params=params)).json()
        seen += [item["id"] for item in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    expected = sorted(made, key=lambda r: (r.started_at, r.id), reverse=True)
    assert seen == [str(r.id) for r in expected]


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"cursor": "not-a-cursor"}, "cursor is malformed"),
        ({"number": "Kovács Éva"}, "not a phone number"),
        ({"status": "lost"}, "see errors"),
        ({"direction": "sideways"}, "see errors"),
        ({"limit": "0"}, "see errors"),
        ({"limit": "201"}, "see errors"),
        ({"since": "2026-11-28T14:00:00"}, "see errors"),  # no UTC offset
        ({"since": "2026-11-29T00:00:00Z", "until": "2026-11-28T00:00:00Z"}, "earlier than until"),
        ({"participant": "Kov\x00cs"}, "contains a control character"),
        ({"number": "06 1 234\x00 5678"}, "contains a control character"),
        ({"retention_class": "quality 60d"}, "see errors"),
    ],
)
async def test_bad_search_input_is_a_422_problem(
    as_key: AsKey, call: Call, params: dict[str, str], says: str
) -> None:
    client = await as_key(Role.VIEWER)
    body = problem(await client.get("/api/v1/recordings", params=params), 422)
    assert says in body["detail"]
    if says == "see errors":
        assert body["errors"] and body["errors"][0]["field"].startswith("query.")


async def test_detail_tells_the_call_its_quality_basis_retention_and_holds(as_key: AsKey, call: Call) -> None:
    client = await as_key(Role.DPO)
    response = await client.get(f"/api/v1/recordings/{call.ref.lower()}")
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    detail = response.json()
    assert detail["reference"] == call.ref and detail["status"] == "complete"
    assert detail["started_at"] == "2026-11-28T14:03:07.250000Z" and detail["duration_seconds"] == 94.3
    assert detail["direction"] == "inbound" and detail["numbers"] == [LANDLINE, "+36301234567"]
    assert [p["name"] for p in detail["participants"]] == ["Kovács Éva", "Szabó Gergő"]
    caller_stream = detail["streams"][0]
    assert (caller_stream["codec"], caller_stream["packets"], caller_stream["lost"]) == ("PCMA", 4697, 3)
    assert caller_stream["jitter_ms"] == 3.125 and caller_stream["loss_fraction"] == 0.000638
    assert (detail["basis"], detail["purpose"]) == ("legitimate_interest", "customer service")
    assert detail["retention"] == {
        "code": "quality_60d",
        "name": "Quality assurance, 60 days",
        "days": 60,
        "max_days": None,
        "statutory": False,
        "basis": "legitimate_interest",
        "source": "GDPR Art. 6(1)(f); product default, written balancing test",
    }
    assert detail["expires_at"] == "2027-01-27T14:03:07.250000Z"
    assert detail["consent_state"] == "not_required" and detail["encrypted"] is True
    assert detail["sha256"] == hashlib.sha256(call.audio).hexdigest()
    assert (detail["held"], detail["holds"]) == (False, [])
    assert "file_path" not in detail and "raw_metadata" not in detail  # server internals stay inside

    placed = await client.post(
        f"/api/v1/recordings/{call.ref}/holds", json={"reason": "NAIH inquiry 2026/51"}
    )
    assert placed.status_code == 201, placed.text
    assert placed.json()["state"] == "active" and placed.json()["placed_by"] == "api-key:dpo integration"
    detail = (await client.get(f"/api/v1/recordings/{call.recording.id}")).json()
    assert detail["held"] is True and [h["reason"] for h in detail["holds"]] == ["NAIH inquiry 2026/51"]


async def test_odd_references_are_404_and_audited_without_control_characters(
    as_key: AsKey, call: Call, pool: asyncpg.Pool
) -> None:
    client = await as_key(Role.VIEWER)
    for path in (
        "/api/v1/recordings/%00HT-0000",
        "/api/v1/recordings/ht%0a0000%090000",
        "/api/v1/recordings/x",
    ):
        assert "no such recording" in problem(await client.get(path), 404)["detail"]
    requested = [row["details"]["requested"] for row in await audit_rows(pool, "recording.access_denied")]
    assert requested == ["\ufffdHT-0000", "ht\ufffd0000\ufffd0000", "x"]
    assert (await client.get("/api/v1/recordings", params={"retention_class": ""})).status_code == 200


async def test_a_hold_needs_a_reason(as_key: AsKey, call: Call, pool: asyncpg.Pool) -> None:
    client = await as_key(Role.DPO)
    for body in ({"reason": "   "}, {}, {"reason": "x", "extra": 1}, {"reason": "court\x00order"}):
        problem(await client.post(f"/api/v1/recordings/{call.ref}/holds", json=body), 422)
    assert await pool.fetchval("SELECT count(*) FROM holds") == 0


# -- audio ------------------------------------------------------------------------------------------------------------
async def test_ranges_of_a_sealed_recording_are_the_plaintexts_and_only_playbacks_are_audited(
    as_user: AsUser, accounts: dict[Role, Account], call: Call, pool: asyncpg.Pool
) -> None:
    client = await as_user(Role.SUPERVISOR)
    url = f"/api/v1/recordings/{call.ref}/audio"
    size = len(call.audio)
    assert size > 140_000  # the middle range below crosses two chunk boundaries of the sealed file

    whole = await client.get(url)
    assert whole.status_code == 200 and whole.content == call.audio
    assert whole.headers["content-type"] == "audio/flac" and whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-length"] == str(size) and whole.headers["cache-control"] == "no-store"
    etag = whole.headers["etag"]

    first = await client.get(url, headers={"Range": "bytes=0-1023"})
    assert first.status_code == 206 and first.content == call.audio[:1024] and first.content[:4] == b"fLaC"
    assert (
        first.headers["content-range"] == f"bytes 0-1023/{size}" and first.headers["content-length"] == "1024"
    )

    middle = await client.get(url, headers={"Range": "bytes=65000-140000"})
    assert middle.status_code == 206 and middle.content == call.audio[65000:140001]
    assert middle.headers["content-range"] == f"bytes 65000-140000/{size}"

    suffix = await client.get(url, headers={"Range": "bytes=-500"})
    assert suffix.status_code == 206 and suffix.content == call.audio[-500:]
    assert suffix.headers["content-range"] == f"bytes {size - 500}-{size - 1}/{size}"

    open_ended = await client.get(url, headers={"Range": f"bytes={size - 10}-"})
    assert open_ended.content == call.audio[-10:]

    beyond = await client.get(url, headers={"Range": f"bytes={size}-"})
    assert "outside the audio" in problem(beyond, 416)["detail"]
    assert beyond.headers["content-range"] == f"bytes */{size}"

    # If-Range (RFC 9110 §13.1.5): the range while the audio is unchanged, the whole of it otherwise.
    same = await client.get(url, headers={"Range": "bytes=100-199", "If-Range": etag})
    assert same.status_code == 206 and same.content == call.audio[100:200]
    stale = await client.get(url, headers={"Range": "bytes=100-199", "If-Range": '"0123"'})
    assert stale.status_code == 200 and stale.content == call.audio

    plays = await audit_rows(pool, "recording.play")
    assert len(plays) == 3  # the whole file, bytes=0-…, and the If-Range answered whole: not the seeks
    for row in plays:
        assert row["object_id"] == str(call.recording.id) and row["actor"] == accounts[Role.SUPERVISOR].email
        assert row["tenant_id"] == call.recording.tenant_id and row["origin"] == "203.0.113.7"
        assert row["details"] == {"reference": call.ref, "format": "flac"}


async def test_download_is_the_decrypted_file_named_by_reference_and_start(
    as_key: AsKey, api_services: ApiServices, call: Call, pool: asyncpg.Pool
) -> None:
    client = await as_key(Role.SUPERVISOR)
    response = await client.get(f"/api/v1/recordings/{call.ref}/download")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == (
        f'attachment; filename="{call.ref}_20261128T140307Z.flac"'
    )
    assert response.headers["content-type"] == "audio/flac"
    assert api_services.crypto is not None and api_services.blobs is not None
    key = await api_services.crypto.data_key(call.recording)
    assert call.recording.file_path is not None and call.recording.encryption == SEALED_FORMAT
    with open_stored(api_services.blobs, call.recording.file_path, key) as decrypted:
        assert response.content == decrypted.read() == call.audio
    digest = base64.b64encode(hashlib.sha256(call.audio).digest()).decode()
    assert response.headers["repr-digest"] == f"sha-256=:{digest}:"
    rows = await audit_rows(pool, "recording.download")
    assert [(r["object_id"], r["actor"]) for r in rows] == [
        (str(call.recording.id), "api-key:supervisor integration")
    ]


async def test_a_plain_recording_made_before_encryption_plays_and_downloads(
    as_key: AsKey, api_services: ApiServices, tenant: Tenant
) -> None:
    plain = await record_call(api_services, tenant, sealed=False, seconds=5)
    assert plain.recording.encryption is None
    client = await as_key(Role.ADMIN)
    ranged = await client.get(f"/api/v1/recordings/{plain.ref}/audio", headers={"Range": "bytes=10-99"})
    assert ranged.status_code == 206 and ranged.content == plain.audio[10:100]
    assert (await client.get(f"/api/v1/recordings/{plain.ref}/download")).content == plain.audio


async def test_a_destroyed_key_is_410_and_a_call_without_media_has_no_audio(
    as_key: AsKey, api_services: ApiServices, tenant: Tenant, call: Call, pool: asyncpg.Pool
) -> None:
    assert api_services.crypto is not None
    async with pool.acquire() as conn, conn.transaction():
        assert await api_services.crypto.keys.destroy(conn, call.recording.id, tenant_id=tenant.id)
    client = await as_key(Role.SUPERVISOR)
    for action in ("audio", "download"):
        body = problem(await client.get(f"/api/v1/recordings/{call.ref}/{action}"), 410)
        assert body["detail"] == "the recording's key was destroyed"
    silent = await record_call(api_services, tenant, status=RecordingStatus.NO_MEDIA)
    body = problem(await client.get(f"/api/v1/recordings/{silent.ref}/audio"), 404)
    assert "has no audio (no_media)" in body["detail"]
    assert (
        await audit_rows(pool, "recording.play") == [] and await audit_rows(pool, "recording.download") == []
    )


async def test_a_call_still_being_recorded_has_no_audio_to_serve_yet(
    as_key: AsKey, api_services: ApiServices, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    assert api_services.blobs is not None
    ongoing = await api_services.catalogue.create(
        NewRecording(
            call_id=f"{uuid4().hex}@pbx.example.hu", started_at=T0, tenant_id=tenant.id, format="flac"
        )
    )
    path = api_services.blobs.path_for(ongoing.id, T0, "flac")
    path.write_bytes(b"fLaC\x00\x00\x00\x22")  # what the writer has flushed so far
    await pool.execute("UPDATE recordings SET file_path = $2 WHERE id = $1", ongoing.id, str(path))
    client = await as_key(Role.SUPERVISOR)
    for action in ("audio", "download"):
        body = problem(await client.get(f"/api/v1/recordings/{ongoing.reference}/{action}"), 409)
        assert "still being recorded" in body["detail"]
    assert (await client.get(f"/api/v1/recordings/{ongoing.reference}")).json()["status"] == "recording"


# -- retention ------------------------------------------------------------------------------------------------------
async def test_a_retention_change_moves_expires_at(as_user: AsUser, call: Call, pool: asyncpg.Pool) -> None:
    client = await as_user(Role.SUPERVISOR)
    url = f"/api/v1/recordings/{call.ref}/retention"
    response = await client.put(url, json={"retention_class": "contract_evidence"})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "reference": call.ref,
        "old_class": "quality_60d",
        "new_class": "contract_evidence",
        "old_expires_at": "2027-01-27T14:03:07.250000Z",
        "expires_at": "2031-11-28T14:03:07.250000Z",
    }
    detail = (await client.get(f"/api/v1/recordings/{call.ref}")).json()
    assert (
        detail["expires_at"] == "2031-11-28T14:03:07.250000Z"
        and detail["retention_class"] == "contract_evidence"
    )
    [change] = await audit_rows(pool, "retention.change")
    assert change["actor"] == "supervisor@acme.example" and change["object_id"] == str(call.recording.id)

    unknown = problem(await client.put(url, json={"retention_class": "forever"}), 422)
    assert "no retention class 'forever'" in unknown["detail"]
    problem(await client.put(url, json={"retention_class": ""}), 422)
    problem(await client.put(url, json={"days": 30}), 422)


async def test_a_statutory_floor_refuses_a_shorter_period_with_409(
    as_key: AsKey, api_services: ApiServices, tenant: Tenant
) -> None:
    utility = await record_call(
        api_services, tenant, basis="legal_obligation", class_code="utility_customer_service", seconds=1
    )
    client = await as_key(Role.ADMIN)
    url = f"/api/v1/recordings/{utility.ref}/retention"
    body = problem(await client.put(url, json={"retention_class": "quality_60d"}), 409)
    assert "Fgytv. 17/B" in body["detail"]
    detail = (await client.get(f"/api/v1/recordings/{utility.ref}")).json()
    assert detail["retention_class"] == "utility_customer_service"
    assert detail["retention"]["statutory"] is True


async def test_retention_options_are_the_tenants_choice_or_every_class(
    as_key: AsKey, api_services: ApiServices, tenant: Tenant, call: Call
) -> None:
    client = await as_key(Role.VIEWER)
    unset = (await client.get("/api/v1/retention-options")).json()
    assert unset["default"] is None and unset["others"] == []
    assert {c["code"] for c in unset["selectable"]} >= {"none", "quality_60d", "investment_services"}
    await api_services.retention.set_options(
        tenant.id, "quality_60d", ["contract_evidence", "none"], OPERATOR
    )
    chosen = (await client.get("/api/v1/retention-options")).json()
    assert chosen["default"]["code"] == "quality_60d" and chosen["default"]["days"] == 60
    assert [c["code"] for c in chosen["others"]] == ["contract_evidence", "none"]
    assert [c["code"] for c in chosen["selectable"]] == ["quality_60d", "contract_evidence", "none"]
    # A period the tenant does not offer is refused for a call.
    admin = await as_key(Role.ADMIN)
    refused = await admin.put(f"/api/v1/recordings/{call.ref}/retention", json={"retention_class": "consent"})
    assert "not one of the retention periods this tenant offers" in problem(refused, 422)["detail"]


async def test_the_openapi_document_describes_the_recordings_endpoints(
    make_client: Callable[[], httpx.AsyncClient],
) -> None:
    spec = (await make_client().get("/api/v1/openapi.json")).json()
    audio = spec["paths"]["/api/v1/recordings/{id_or_reference}/audio"]["get"]
    assert set(audio["responses"]["200"]["content"]) == {"audio/flac", "audio/wav", "audio/ogg", "audio/mpeg"}
    assert "416" in audio["responses"] and "410" in audio["responses"]
    listing = spec["paths"]["/api/v1/recordings"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {
        "number",
        "reference",
        "participant",
        "since",
        "until",
        "status",
        "retention_class",
        "direction",
        "cursor",
        "limit",
    }
