"""Delivery targets against a real catalogue: settings checked before anything is stored, plain FTP and unpinned
SFTP refused with the reason, the secret stored only encrypted under the tenant's key, every change audited
without the secret or the filter's numbers."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import pytest

from storage.audit import AuditLog
from storage.delivery_filter import DeliveryFilter, FilterDirection
from storage.delivery_schedule import Schedule
from storage.delivery_settings import (
    InsecureTargetError,
    TargetKind,
    TargetSettingsError,
    check_host_key,
    settings_from_url,
)
from storage.delivery_targets import TargetStore
from storage.errors import ConflictError, KeyUnavailableError, LifecycleError, NotFoundError
from storage.keyfile import KeyFileProvider
from tests.unit.delivery.samples import CREATED, HOST_KEY, OPERATOR, PASSWORD, add_target, sftp_settings

from .retention_samples import Clock, make_tenant

PRIVATE_KEY = """-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACBOxmoH3tmHVq0P0wCbJAXBMfD3kH9c1bmZVQoMGTFJjwAAAJBixWlGYsVp
-----END OPENSSH PRIVATE KEY-----
"""


@pytest.fixture
def clock() -> Clock:
    return Clock(CREATED)


@pytest.fixture
def provider(tmp_path: Path) -> KeyFileProvider:
    return KeyFileProvider(tmp_path / "keys" / "keys.json")


@pytest.fixture
def store(pool: asyncpg.Pool, provider: KeyFileProvider, clock: Clock) -> TargetStore:
    return TargetStore(pool, provider, audit=AuditLog(clock=clock), clock=clock)


async def audit_rows(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT action, details FROM audit_log ORDER BY seq")


async def test_a_target_keeps_its_secret_encrypted_under_the_tenants_key(
    pool: asyncpg.Pool, store: TargetStore, provider: KeyFileProvider
) -> None:
    acme = await make_tenant(pool, "acme")
    numbers = DeliveryFilter.of(numbers=["06 1 234 5678"], direction="inbound", classes=["quality_60d"])
    target = await add_target(store, acme, filter=numbers)

    assert target.kind is TargetKind.SFTP and target.enabled and target.has_secret
    assert target.endpoint == "sftp://hangtar@files.example.hu:22/srv/recordings/incoming"
    assert (
        target.settings["name_template"] == "{date}_{time}_{reference}" and target.settings["sidecar"] is True
    )
    assert target.filter.numbers == ("+3612345678",) and target.filter.direction is FilterDirection.INBOUND
    assert target.deliver_since == CREATED

    stored = await pool.fetchrow("SELECT settings, secret_ref, secret_wrapped FROM delivery_targets")
    assert PASSWORD.encode() not in bytes(stored["secret_wrapped"])
    assert PASSWORD not in json.dumps(stored["settings"])
    assert stored["secret_ref"] == provider.key_ref(acme)
    assert await store.secret(target) == PASSWORD
    # Nothing a person or a log sees carries it.
    assert PASSWORD not in repr(target) and PASSWORD not in json.dumps(target.to_json())
    [entry] = await audit_rows(pool)
    assert entry["action"] == "delivery_target.create"
    assert PASSWORD not in json.dumps(entry["details"]) and "+3612345678" not in json.dumps(entry["details"])
    assert entry["details"]["filter"] == {"numbers": 1, "direction": "inbound", "classes": ["quality_60d"]}


async def test_a_stored_secret_only_opens_for_its_own_target(pool: asyncpg.Pool, store: TargetStore) -> None:
    acme = await make_tenant(pool, "acme")
    first = await add_target(store, acme, name="first")
    second = await add_target(store, acme, name="second", secret="another-password")
    await pool.execute(
        "UPDATE delivery_targets SET secret_wrapped = (SELECT secret_wrapped FROM delivery_targets WHERE id = $1) "
        "WHERE id = $2",
        first.id,
        second.id,
    )
    with pytest.raises(KeyUnavailableError, match="does not decrypt"):
        await store.secret(second)
    assert await store.secret(first) == PASSWORD


@pytest.mark.parametrize(
    "attempt",
    [
        lambda: TargetKind.parse("FTP"),
        lambda: settings_from_url("ftp://hangtar@files.example.hu/incoming"),
    ],
)
def test_plain_ftp_is_refused_with_the_reason(attempt: object) -> None:
    with pytest.raises(InsecureTargetError, match=r"clear text.*Art\. 32.*sftp"):
        attempt()  # type: ignore[operator]


async def test_refused_targets_leave_nothing_behind(pool: asyncpg.Pool, store: TargetStore) -> None:
    acme = await make_tenant(pool, "acme")
    with pytest.raises(InsecureTargetError, match=r"Art\. 32"):
        await store.create(
            acme,
            kind="ftp",
            name="legacy",
            settings={"host": "ftp.example.hu", "username": "rec"},
            secret=PASSWORD,
            schedule=Schedule.every(3600),
            actor=OPERATOR,
        )
    with pytest.raises(InsecureTargetError, match=r"Art\. 32"):
        await add_target(store, acme, settings=sftp_settings(url="ftp://rec@ftp.example.hu/"))
    with pytest.raises(InsecureTargetError, match="host key pinned"):
        await add_target(store, acme, settings=sftp_settings(host_key=None))
    assert await pool.fetchval("SELECT count(*) FROM delivery_targets") == 0
    assert await audit_rows(pool) == []
    # The database refuses an ftp:// URL even if the checks were bypassed.
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute(
            "INSERT INTO delivery_targets (id, tenant_id, kind, name, settings, schedule, deliver_since, "
            "created_at, updated_at) VALUES (gen_random_uuid(), $1, 'sftp', 'x', $2, '{}', now(), now(), now())",
            acme,
            {"url": "FTP://rec@ftp.example.hu/"},
        )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (sftp_settings(host_key="ssh-ed25519 not-base64!"), "does not decode"),
        (sftp_settings(host_key="ssh-rsa " + HOST_KEY.split()[1]), "its key data is 'ssh-ed25519'"),
        (sftp_settings(name_template="{date}_{caller}"), "must contain {reference}"),
        (sftp_settings(name_template="{date}/{reference}"), "no '/'"),
        (sftp_settings(name_template="{reference}_{agent}"), "unknown field"),
        (sftp_settings(name_template="{reference!r}"), "without a format"),
        (sftp_settings(remote_dir="incoming/../../etc"), "'..'"),
        (sftp_settings(port=70000), "TCP port"),
        (sftp_settings(host="files example"), "settings.host"),
        (sftp_settings(format="aac"), "settings.format"),
        (sftp_settings(auth="kerberos"), "settings.auth"),
    ],
)
async def test_bad_settings_are_explained(
    pool: asyncpg.Pool, store: TargetStore, settings: dict[str, object], message: str
) -> None:
    acme = await make_tenant(pool, "acme")
    with pytest.raises(TargetSettingsError, match=message):
        await add_target(store, acme, settings=settings)


def test_a_keyscan_line_pins_the_key_without_host_or_comment() -> None:
    assert check_host_key(f"[files.example.hu]:2222 {HOST_KEY}") == HOST_KEY
    assert check_host_key(f"{HOST_KEY} root@files") == HOST_KEY
    kind, settings = settings_from_url("sftp://rec%40acme@files.example.hu:2222/~/incoming")
    assert kind is TargetKind.SFTP
    assert settings == {
        "host": "files.example.hu",
        "username": "rec@acme",
        "port": 2222,
        "remote_dir": "incoming",
    }
    with pytest.raises(TargetSettingsError, match="no password in the URL"):
        settings_from_url("sftp://rec:secret@files.example.hu/")


async def test_key_login_needs_a_private_key(pool: asyncpg.Pool, store: TargetStore) -> None:
    acme = await make_tenant(pool, "acme")
    with pytest.raises(TargetSettingsError, match="private key"):
        await add_target(store, acme, settings=sftp_settings(auth="key"), secret=PASSWORD)
    target = await add_target(store, acme, settings=sftp_settings(auth="key"), secret=PRIVATE_KEY)
    assert await store.secret(target) == PRIVATE_KEY


async def test_names_are_unique_per_tenant(pool: asyncpg.Pool, store: TargetStore) -> None:
    acme = await make_tenant(pool, "acme")
    beta = await make_tenant(pool, "beta")
    await add_target(store, acme)
    await add_target(store, beta)  # another tenant may use the same name
    with pytest.raises(ConflictError, match="already has a delivery target named 'archive'"):
        await add_target(store, acme)
    assert [t.name for t in await store.list(acme)] == ["archive"]
    assert len(await store.list()) == 2
    assert (await store.find(acme, "ARCHIVE")).tenant_id == acme
    with pytest.raises(NotFoundError):
        await store.find(acme, "crm")


async def test_update_merges_settings_and_rewraps_a_new_secret(
    pool: asyncpg.Pool, store: TargetStore, clock: Clock
) -> None:
    acme = await make_tenant(pool, "acme")
    target = await add_target(store, acme)
    clock.advance(hours=1)
    changed = await store.update(
        target.id, actor=OPERATOR, settings={"port": 2222, "format": "mp3"}, secret="Nyar-2027!kulcs"
    )
    assert changed.settings["port"] == 2222 and changed.settings["format"] == "mp3"
    assert changed.settings["host_key"] == HOST_KEY and changed.updated_at == clock.now
    assert await store.secret(changed) == "Nyar-2027!kulcs"
    with pytest.raises(TargetSettingsError, match="needs the new secret"):
        await store.update(target.id, actor=OPERATOR, settings={"auth": "key"})
    entry = (await audit_rows(pool))[-1]
    assert entry["action"] == "delivery_target.update"
    assert entry["details"]["changed"] == ["settings"] and entry["details"]["secret"] == "changed"
    assert "Nyar" not in json.dumps(entry["details"])


async def test_disable_enable_and_a_tenants_scope(pool: asyncpg.Pool, store: TargetStore) -> None:
    acme = await make_tenant(pool, "acme")
    beta = await make_tenant(pool, "beta")
    target = await add_target(store, acme)
    assert not (await store.disable(target.id, actor=OPERATOR)).enabled
    assert (await store.enable(target.id, actor=OPERATOR)).enabled
    with pytest.raises(NotFoundError):
        await store.disable(target.id, actor=OPERATOR, scope=beta)
    actions = [row["action"] for row in await audit_rows(pool)]
    assert actions == ["delivery_target.create", "delivery_target.disable", "delivery_target.enable"]


async def test_a_target_that_delivered_copies_cannot_be_removed(
    pool: asyncpg.Pool, store: TargetStore
) -> None:
    acme = await make_tenant(pool, "acme")
    unused = await add_target(store, acme, name="unused")
    await store.delete(unused.id, actor=OPERATOR)
    with pytest.raises(NotFoundError):
        await store.get(unused.id)

    used = await add_target(store, acme, name="used")
    await pool.execute(
        "INSERT INTO deliveries (target_id, tenant_id, recording_id, reference, kind, status, attempts, "
        "next_attempt_at, idempotency_key, created_at, delivered_at) "
        "VALUES ($1, $2, gen_random_uuid(), 'HT-7K3M-Q9RX', 'recording', 'delivered', 1, now(), 'k1', now(), now())",
        used.id,
        acme,
    )
    with pytest.raises(LifecycleError, match=r"delivered 1 copies.*Art\. 19.*disable it instead"):
        await store.delete(used.id, actor=OPERATOR)
    assert (await store.get(used.id)).name == "used"
