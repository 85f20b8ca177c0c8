"""Tenants, their numbers and source networks: written forms, conflicts, isolation, audit, deletion rules."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import asyncpg
import pytest

from storage import Catalogue
from storage.audit import Actor, AuditLog
from storage.errors import ConflictError, LifecycleError, NotFoundError
from storage.policies import PolicyScope, PolicyStore
from storage.policy_rules import PolicySpec
from storage.retention_class import Basis
from storage.tenant_models import (
    NumberKind,
    parse_did,
    parse_extension,
    parse_network,
    parse_range,
    parse_region,
    parse_slug,
)
from storage.tenants import TenantStore

from .samples import new_recording

T0 = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
ANNA = Actor(name="anna@hangtar.example.hu", origin="192.0.2.44")
BENCE = Actor(name="cli:bence", origin="cli")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def store(pool: asyncpg.Pool) -> TenantStore:
    clock = Clock()
    return TenantStore(pool, AuditLog(clock=clock), clock=clock)


async def _audit(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    rows = await pool.fetch("SELECT * FROM audit_log ORDER BY seq")
    return [dict(row) for row in rows]


# -- written forms (pure) --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "written",
    [
        "+36 1 234 5678",
        "06-1-234-5678",
        "0036 1 234 5678",
        "3612345678",
        "(06 1) 234-5678",
        "tel:+36-1-234-5678",
    ],
)
def test_a_did_in_any_written_form_is_stored_as_e164(written: str) -> None:
    assert parse_did(written, "HU") == "+3612345678"


def test_a_did_is_read_in_the_tenants_region() -> None:
    assert parse_did("020 7946 0958", "GB") == "+442079460958"
    assert parse_did("06 96 555 123", "HU") == "+3696555123"  # Győr


@pytest.mark.parametrize(
    "junk", ["12345", "+36 1 234", "06-1-234-567", "hello", "", "+36 1 234 5678 ext 12", "*21#"]
)
def test_what_is_not_a_valid_number_is_refused(junk: str) -> None:
    with pytest.raises(ValueError, match="not a valid phone number"):
        parse_did(junk, "HU")


@pytest.mark.parametrize(
    "written",
    [
        "+36 1 234 56xx",
        "+3612345 6XX",
        "06 1 234 56xx",
        "+3612345600-+3612345699",
        "06 1 234 5600 - 06 1 234 5699",
        "+36 1 234 5600..+36 1 234 5699",
    ],
)
def test_a_range_is_stored_as_its_e164_prefix(written: str) -> None:
    assert parse_range(written, "HU") == "+36123456"


def test_wider_ranges() -> None:
    assert parse_range("+36 96 555 1xx", "HU") == "+36965551"
    assert parse_range("+36 1 23x xxxx", "HU") == "+36123"


@pytest.mark.parametrize(
    ("written", "why"),
    [
        ("+3612345600-+3612345650", "not a whole block"),
        ("+3612345699-+3612345600", "must not be above"),
        ("+3612345678-+3612345678", "is one number"),
        ("+36 1 2x4 5678", "not a range"),
        ("+36 1 234 5678", "not a range"),
        ("+36 1 234 56ab", "not a range"),
        ("+36 0xx", "holds no valid phone number"),
    ],
)
def test_ranges_that_cannot_be_meant_are_refused(written: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_range(written, "HU")


def test_extensions() -> None:
    assert parse_extension("201", "HU") == "201"
    assert parse_extension("*21#", "HU") == "*21#"
    assert parse_extension(" 1-001 ", "HU") == "1001"
    with pytest.raises(ValueError, match="is a phone number"):
        parse_extension("06 1 234 5678", "HU")
    with pytest.raises(ValueError, match="digits"):
        parse_extension("recepcio", "HU")
    with pytest.raises(ValueError, match="digits"):
        parse_extension("1234567890123456", "HU")


def test_networks() -> None:
    assert parse_network("192.0.2.0/28") == ipaddress.ip_network("192.0.2.0/28")
    assert parse_network("198.51.100.7") == ipaddress.ip_network("198.51.100.7/32")
    assert parse_network("2001:db8:4::/48") == ipaddress.ip_network("2001:db8:4::/48")
    with pytest.raises(ValueError, match=r"did you mean 192\.0\.2\.0/28"):
        parse_network("192.0.2.10/28")
    with pytest.raises(ValueError, match="not an IP network"):
        parse_network("sbc1.example.hu")


def test_slugs_and_regions() -> None:
    assert parse_slug(" acme-kft ") == "acme-kft"
    assert parse_region("hu") == "HU"
    for bad in ("Acme", "-acme", "acme_kft", "", "a" * 64):
        with pytest.raises(ValueError, match="slug"):
            parse_slug(bad)
    with pytest.raises(ValueError, match="region"):
        parse_region("XX")


# -- tenants ---------------------------------------------------------------------------------------------------
async def test_create_get_list_and_audit(store: TenantStore, pool: asyncpg.Pool) -> None:
    acme = await store.create(
        slug="acme",
        name="Acme  Kft.",
        hints=["SP-HU-0042/Budapest Iroda", " sp-hu-0042/budapest iroda "],
        actor=ANNA,
    )
    assert acme.name == "Acme Kft."
    assert acme.hints == ("SP-HU-0042/Budapest Iroda",)  # one hint, whatever its case
    assert acme.region == "HU"
    assert await store.get(acme.id) == acme
    assert await store.get("ACME") == acme
    zeta = await store.create(slug="zeta", name="Zéta Bt.", region="AT", actor=ANNA)
    assert [t.slug for t in await store.list()] == ["acme", "zeta"]
    assert zeta.region == "AT"
    entries = await _audit(pool)
    assert [(e["action"], e["object_id"], e["actor"]) for e in entries] == [
        ("tenant.create", str(acme.id), ANNA.name),
        ("tenant.create", str(zeta.id), ANNA.name),
    ]
    assert entries[0]["details"]["hints"] == ["SP-HU-0042/Budapest Iroda"]
    assert entries[0]["tenant_id"] == acme.id
    with pytest.raises(NotFoundError):
        await store.get(uuid4())
    with pytest.raises(NotFoundError):
        await store.get("nincs")


async def test_slug_and_hints_are_unique(store: TenantStore, pool: asyncpg.Pool) -> None:
    await store.create(slug="acme", name="Acme Kft.", hints=["SP-HU-0042/Budapest Iroda"], actor=ANNA)
    with pytest.raises(ConflictError, match="already exists"):
        await store.create(slug="acme", name="Another", actor=ANNA)
    with pytest.raises(ConflictError, match="already names another tenant") as caught:
        await store.create(slug="other", name="Other", hints=["sp-hu-0042/BUDAPEST IRODA"], actor=ANNA)
    assert caught.value.owner_slug == "acme"
    assert [t.slug for t in await store.list()] == ["acme"]
    assert len(await _audit(pool)) == 1


async def test_update_name_and_hints_audits_the_change(store: TenantStore, pool: asyncpg.Pool) -> None:
    acme = await store.create(slug="acme", name="Acme Kft.", hints=["SP-HU-0042/Budapest Iroda"], actor=ANNA)
    other = await store.create(
        slug="gyor", name="Győri Fuvar Kft.", hints=["SP-HU-0042/Gyor Telephely"], actor=ANNA
    )
    updated = await store.update(
        acme.id,
        name="Acme Hungária Kft.",
        hints=["SP-HU-0042/Budapest Iroda", "acme.voip.example.hu"],
        actor=BENCE,
    )
    assert updated.name == "Acme Hungária Kft."
    assert updated.hints == ("SP-HU-0042/Budapest Iroda", "acme.voip.example.hu")
    same = await store.update(acme.id, name="Acme Hungária Kft.", actor=BENCE)  # nothing changes
    assert same == updated
    with pytest.raises(ConflictError):
        await store.update(other.id, hints=["ACME.voip.example.hu"], actor=BENCE)
    entries = [e for e in await _audit(pool) if e["action"] == "tenant.update"]
    assert len(entries) == 1
    assert entries[0]["details"] == {
        "name": {"old": "Acme Kft.", "new": "Acme Hungária Kft."},
        "hints": {
            "old": ["SP-HU-0042/Budapest Iroda"],
            "new": ["SP-HU-0042/Budapest Iroda", "acme.voip.example.hu"],
        },
    }
    assert entries[0]["actor"] == "cli:bence"


async def test_delete_is_refused_while_recordings_exist(store: TenantStore, pool: asyncpg.Pool) -> None:
    acme = await store.create(slug="acme", name="Acme Kft.", actor=ANNA)
    await store.add_number(acme.id, "+36 1 234 5678", actor=ANNA)
    recording = await Catalogue(pool).create(new_recording(tenant_id=acme.id, numbers=["+3612345678"]))
    with pytest.raises(LifecycleError, match="1 recording"):
        await store.delete(acme.id, actor=ANNA)
    assert await store.get(acme.id) == acme
    await pool.execute("DELETE FROM recordings WHERE id = $1", recording.id)  # erased
    await store.delete(acme.id, actor=ANNA)
    with pytest.raises(NotFoundError):
        await store.get(acme.id)


async def test_delete_removes_numbers_sources_and_policies(store: TenantStore, pool: asyncpg.Pool) -> None:
    acme = await store.create(slug="acme", name="Acme Kft.", actor=ANNA)
    number = await store.add_number(acme.id, "06 1 234 5678", actor=ANNA)
    await store.add_source(acme.id, "192.0.2.0/28", actor=ANNA)
    policies = PolicyStore(pool, AuditLog())
    await policies.set(
        PolicyScope.for_number(acme.id, number.id),
        PolicySpec(basis=Basis.LEGITIMATE_INTEREST, purpose="quality assurance", retention="quality_60d"),
        actor=ANNA,
    )
    deleted = await store.delete(acme.id, actor=BENCE)
    assert deleted.slug == "acme"
    assert await pool.fetchval("SELECT count(*) FROM tenant_numbers") == 0
    assert await pool.fetchval("SELECT count(*) FROM tenant_sources") == 0
    assert await pool.fetchval("SELECT count(*) FROM recording_policies WHERE tenant_id IS NOT NULL") == 0
    entry = (await _audit(pool))[-1]
    assert (entry["action"], entry["actor"], entry["details"]["numbers"]) == ("tenant.delete", "cli:bence", 1)
    assert len(entry["details"]["policy_versions"]) == 1
    with pytest.raises(NotFoundError):
        await store.get(acme.id)


async def test_delete_is_refused_while_proof_records_exist(store: TenantStore, pool: asyncpg.Pool) -> None:
    acme = await store.create(slug="acme", name="Acme Kft.", actor=ANNA)
    await pool.execute(
        """
        INSERT INTO access_requests (id, tenant_id, number, requester, received_at, due_at, created_by)
        VALUES ($1, $2, '+36301234567', 'e-mail from the caller', $3, $4, 'anna')
        """,
        uuid4(),
        acme.id,
        T0,
        T0 + timedelta(days=30),
    )
    with pytest.raises(LifecycleError, match="access request"):
        await store.delete(acme.id, actor=ANNA)


# -- numbers ---------------------------------------------------------------------------------------------------
async def test_numbers_in_any_form_and_conflicts(store: TenantStore, pool: asyncpg.Pool) -> None:
    acme = await store.create(slug="acme", name="Acme Kft.", actor=ANNA)
    gyor = await store.create(slug="gyor", name="Győri Fuvar Kft.", actor=ANNA)
    did = await store.add_number(acme.id, "06-1-234-5678", label="ügyfélszolgálat", actor=ANNA)
    assert (did.kind, did.value, did.label) == (NumberKind.NUMBER, "+3612345678", "ügyfélszolgálat")
    block = await store.add_number(acme.id, "+36 1 234 56xx", kind=NumberKind.RANGE, actor=ANNA)
    assert block.value == "+36123456"
    ext = await store.add_number(acme.id, "201", kind=NumberKind.EXTENSION, actor=ANNA)
    with pytest.raises(ConflictError, match="already one of this tenant's"):
        await store.add_number(acme.id, "+36 1 234 5678", actor=ANNA)
    with pytest.raises(ConflictError, match="belongs to another tenant") as caught:
        await store.add_number(gyor.id, "0036 1 234 5678", actor=ANNA)
    assert caught.value.owner_slug == "acme"
    assert "acme" not in str(caught.value)  # a tenant-facing message does not name the other tenant
    with pytest.raises(ConflictError):
        await store.add_number(gyor.id, "+3612345600-+3612345699", kind=NumberKind.RANGE, actor=ANNA)
    # Extensions repeat across tenants; an overlapping, narrower range of another tenant is allowed.
    other_ext = await store.add_number(gyor.id, "201", kind=NumberKind.EXTENSION, actor=ANNA)
    narrower = await store.add_number(gyor.id, "+36 1 234 567x", kind=NumberKind.RANGE, actor=ANNA)
    assert (other_ext.value, narrower.value) == ("201", "+361234567")
    with pytest.raises(ValueError, match="not a valid phone number"):
        await store.add_number(acme.id, "06-1-234", actor=ANNA)
    assert [n.id for n in await store.numbers(acme.id)] == [ext.id, did.id, block.id]
    actions = [e["action"] for e in await _audit(pool)]
    assert actions.count("number.add") == 5
    first = next(e for e in await _audit(pool) if e["action"] == "number.add")
    assert first["details"]["written"] == "06-1-234-5678"
    assert first["details"]["value"] == "+3612345678"


async def test_find_number_reads_any_form(store: TenantStore) -> None:
    acme = await store.create(slug="acme", name="Acme Kft.", actor=ANNA)
    did = await store.add_number(acme.id, "+36 1 234 5678", actor=ANNA)
    block = await store.add_number(acme.id, "+36 96 555 1xx", kind=NumberKind.RANGE, actor=ANNA)
    ext = await store.add_number(acme.id, "201", kind=NumberKind.EXTENSION, actor=ANNA)
    assert await store.find_number(acme.id, "06 1 234 5678") == did
    assert await store.find_number(acme.id, "+3612345678") == did
    assert await store.find_number(acme.id, "06 96 555 1XX") == block
    assert await store.find_number(acme.id, "+36965551") == block
    assert await store.find_number(acme.id, "201") == ext
    with pytest.raises(NotFoundError):
        await store.find_number(acme.id, "+36 1 999 9999")


async def test_one_tenant_cannot_touch_anothers_numbers_or_sources(
    store: TenantStore, pool: asyncpg.Pool
) -> None:
    acme = await store.create(slug="acme", name="Acme Kft.", actor=ANNA)
    gyor = await store.create(slug="gyor", name="Győri Fuvar Kft.", actor=ANNA)
    did = await store.add_number(acme.id, "+36 1 234 5678", actor=ANNA)
    await store.add_source(acme.id, "192.0.2.0/28", actor=ANNA)
    with pytest.raises(NotFoundError):
        await store.remove_number(gyor.id, did.id, actor=ANNA)
    with pytest.raises(NotFoundError):
        await store.find_number(gyor.id, "+36 1 234 5678")
    with pytest.raises(NotFoundError):
        await store.remove_source(gyor.id, "192.0.2.0/28", actor=ANNA)
    assert await store.numbers(gyor.id) == []
    assert await store.sources(gyor.id) == []
    assert [n.value for n in await store.numbers(acme.id)] == ["+3612345678"]
    assert [str(s.network) for s in await store.sources(acme.id)] == ["192.0.2.0/28"]
    with pytest.raises(NotFoundError):
        await store.numbers(uuid4())


async def test_remove_number_keeps_its_policies_in_the_audit_trail(
    store: TenantStore, pool: asyncpg.Pool
) -> None:
    acme = await store.create(slug="acme", name="Acme Kft.", actor=ANNA)
    did = await store.add_number(acme.id, "+36 1 234 5678", actor=ANNA)
    await PolicyStore(pool, AuditLog()).set(
        PolicyScope.for_number(acme.id, did.id),
        PolicySpec(basis=Basis.LEGITIMATE_INTEREST, purpose="quality assurance", retention="quality_60d"),
        actor=ANNA,
    )
    removed = await store.remove_number(acme.id, did.id, actor=BENCE)
    assert removed == did
    entry = (await _audit(pool))[-1]
    assert entry["action"] == "number.remove"
    assert [p["retention"] for p in entry["details"]["policies"]] == ["quality_60d"]
    assert await store.numbers(acme.id) == []


async def test_remove_number_is_refused_when_its_policy_decided_recordings(
    store: TenantStore, pool: asyncpg.Pool
) -> None:
    acme = await store.create(slug="acme", name="Acme Kft.", actor=ANNA)
    did = await store.add_number(acme.id, "+36 1 234 5678", actor=ANNA)
    policy = await PolicyStore(pool, AuditLog()).set(
        PolicyScope.for_number(acme.id, did.id),
        PolicySpec(basis=Basis.LEGITIMATE_INTEREST, purpose="quality assurance", retention="quality_60d"),
        actor=ANNA,
    )
    await Catalogue(pool).create(
        new_recording(tenant_id=acme.id, policy_id=policy.id, numbers=["+3612345678"])
    )
    with pytest.raises(LifecycleError, match="1 recording"):
        await store.remove_number(acme.id, did.id, actor=ANNA)
    assert await store.numbers(acme.id) == [did]


# -- sources ---------------------------------------------------------------------------------------------------
async def test_sources_add_list_remove(store: TenantStore, pool: asyncpg.Pool) -> None:
    acme = await store.create(slug="acme", name="Acme Kft.", actor=ANNA)
    gyor = await store.create(slug="gyor", name="Győri Fuvar Kft.", actor=ANNA)
    v4 = await store.add_source(acme.id, "192.0.2.0/28", actor=ANNA)
    v6 = await store.add_source(acme.id, "2001:db8:4::/48", actor=ANNA)
    host = await store.add_source(
        gyor.id, "192.0.2.7", actor=ANNA
    )  # inside acme's network: most specific wins
    assert str(host.network) == "192.0.2.7/32"
    with pytest.raises(ConflictError) as caught:
        await store.add_source(gyor.id, "192.0.2.0/28", actor=ANNA)
    assert caught.value.owner_slug == "acme"
    with pytest.raises(ValueError, match="host bits"):
        await store.add_source(acme.id, "192.0.2.10/28", actor=ANNA)
    assert [s.network for s in await store.sources(acme.id)] == [v4.network, v6.network]
    await store.remove_source(acme.id, "192.0.2.0/28", actor=BENCE)
    assert [s.network for s in await store.sources(acme.id)] == [v6.network]
    actions = [(e["action"], e["object_id"]) for e in await _audit(pool) if e["action"].startswith("source.")]
    assert actions == [
        ("source.add", "192.0.2.0/28"),
        ("source.add", "2001:db8:4::/48"),
        ("source.add", "192.0.2.7/32"),
        ("source.remove", "192.0.2.0/28"),
    ]
