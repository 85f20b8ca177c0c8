from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from storage import CatalogueError, Migration, MigrationError, load_migrations, migrate, open_pool
from tests.pg import PgCluster


def test_shipped_migrations_load_in_order() -> None:
    migrations = load_migrations()
    assert migrations[0].name == "0001_catalogue"
    assert [m.number for m in migrations] == sorted({m.number for m in migrations})
    assert "CREATE TABLE recordings" in migrations[0].sql


ALL = [
    "0001_catalogue",
    "0002_sessions_and_pauses",
    "0003_renditions",
    "0004_lifecycle",
    "0005_keep_proofs",
    "0006_accounts",
    "0007_search",
    "0008_access_extension",
    "0009_delivery",
    "0010_nodes",
    "0011_object_store",
]


@pytest.mark.parametrize("name", ["1_catalogue", "0002-holds", "0002_Holds", "0002_", "0002_holds.sql"])
def test_migration_names_must_be_numbered_lowercase(name: str) -> None:
    with pytest.raises(MigrationError, match="NNNN_lowercase_words"):
        Migration(name=name, sql="SELECT 1")


async def test_migrate_applies_once_and_is_idempotent(pg: PgCluster) -> None:
    pool = await open_pool(await pg.create_database(), max_size=2)
    try:
        assert await migrate(pool) == ALL
        assert await migrate(pool) == []
        rows = await pool.fetch("SELECT name, checksum FROM schema_migrations ORDER BY name")
        assert [(r["name"], r["checksum"]) for r in rows] == [(m.name, m.checksum) for m in load_migrations()]
        columns = await pool.fetch(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'recordings'"
        )
        types = {r["column_name"]: r["data_type"] for r in columns}
        assert types["id"] == "uuid"
        assert types["session_ids"] == "ARRAY"
        assert types["participants"] == "jsonb"
        assert types["started_at"] == "timestamp with time zone"
        assert types["size_bytes"] == "bigint"
        assert {"metadata_history", "raw_metadata", "source_address", "created_at", "updated_at"} <= set(
            types
        )
    finally:
        await pool.close()


async def test_two_nodes_migrating_together_apply_each_migration_once(pg: PgCluster) -> None:
    dsn = await pg.create_database()
    first, second = await open_pool(dsn, max_size=1), await open_pool(dsn, max_size=1)
    try:
        results = await asyncio.gather(migrate(first), migrate(second))
        assert sorted(results) == [[], ALL]
        assert await first.fetchval("SELECT count(*) FROM schema_migrations") == len(ALL)
        # The lock is released: a third run neither blocks nor applies anything.
        assert await asyncio.wait_for(migrate(second), timeout=5) == []
    finally:
        await first.close()
        await second.close()


async def test_the_schema_enforces_its_invariants(pool: asyncpg.Pool) -> None:
    insert = (
        "INSERT INTO recordings (id, reference, call_id, status, started_at) "
        "VALUES (gen_random_uuid(), $1, 'a84b4c76e66710@pbx.example.hu', $2, now())"
    )
    await pool.execute(insert, "HT-7K3M-Q9RX", "recording")
    with pytest.raises(asyncpg.UniqueViolationError):
        await pool.execute(insert, "HT-7K3M-Q9RX", "recording")
    with pytest.raises(asyncpg.CheckViolationError, match="recordings_status_known"):
        await pool.execute(insert, "HT-7K3M-Q9R1", "archived")
    with pytest.raises(asyncpg.CheckViolationError, match="recordings_reference_format"):
        await pool.execute(insert, "ht-7k3m-q9r1", "recording")  # stored canonical only


async def test_failed_migration_is_rolled_back_and_not_recorded(pool: asyncpg.Pool) -> None:
    broken = Migration(
        name="0002_legal_holds",
        sql="CREATE TABLE legal_holds (recording_id uuid REFERENCES recordings);\nSELECT 1 / 0;",
    )
    with pytest.raises(MigrationError, match="0002_legal_holds failed: division by zero"):
        await migrate(pool, [*load_migrations(), broken])
    assert await pool.fetchval("SELECT to_regclass('legal_holds')") is None
    assert await pool.fetchval("SELECT count(*) FROM schema_migrations WHERE name = '0002_legal_holds'") == 0
    assert await migrate(pool) == []  # the good ones are intact, and the lock was released


async def test_an_applied_migration_that_changed_is_refused(pool: asyncpg.Pool) -> None:
    shipped = load_migrations()[0]
    edited = Migration(
        name=shipped.name, sql=shipped.sql + "\nALTER TABLE recordings ADD COLUMN tenant text;\n"
    )
    with pytest.raises(MigrationError, match="0001_catalogue changed after it was applied"):
        await migrate(pool, [edited])
    assert (
        await pool.fetchval("SELECT count(*) FROM information_schema.columns WHERE column_name = 'tenant'")
        == 0
    )


async def test_jsonb_columns_take_and_give_python_objects(pool: asyncpg.Pool) -> None:
    value = {"aor": "sip:+3612345678@pbx.example.hu", "name": "Kovács Éva", "tags": [1, 2.5, None, True]}
    assert await pool.fetchval("SELECT $1::jsonb", value) == value
    assert await pool.fetchval("SELECT $1::jsonb ->> 'name'", value) == "Kovács Éva"
    assert await pool.fetchval('SELECT \'[{"role": "caller"}]\'::json') == [{"role": "caller"}]


async def test_unreachable_database_is_a_catalogue_error(pg: PgCluster, tmp_path: object) -> None:
    with pytest.raises(CatalogueError, match="cannot connect"):
        await open_pool(f"postgresql://postgres@/hangtar?host={tmp_path}&port=5432", max_size=1)
    with pytest.raises(CatalogueError, match="cannot connect"):
        await open_pool(pg.dsn_for("no_such_database"), max_size=1)


async def test_a_tenant_with_proof_records_cannot_be_deleted_by_cascade(pool: asyncpg.Pool) -> None:
    tenant = uuid.uuid4()
    await pool.execute("INSERT INTO tenants (id, slug, name) VALUES ($1, 'proofs', 'Proofs Kft.')", tenant)
    await pool.execute(
        "INSERT INTO consent_withdrawals (tenant_id, number, withdrawn_at, recorded_by) "
        "VALUES ($1, '+3612345678', now(), 'dpo@example.hu')",
        tenant,
    )
    with pytest.raises(asyncpg.RestrictViolationError):
        await pool.execute("DELETE FROM tenants WHERE id = $1", tenant)
    await pool.execute(
        "INSERT INTO access_requests (id, tenant_id, number, requester, received_at, due_at, created_by) "
        "VALUES ($1, $2, '+3612345678', 'Kiss Anna', now(), now() + interval '1 month', 'dpo@example.hu')",
        uuid.uuid4(),
        tenant,
    )
    await pool.execute("DELETE FROM consent_withdrawals")
    with pytest.raises(asyncpg.RestrictViolationError):
        await pool.execute("DELETE FROM tenants WHERE id = $1", tenant)
