"""Connection pool and schema migrations for the catalogue database.

Migrations are the `storage/migrations/NNNN_name.sql` files shipped as package data, applied in number order,
each in its own transaction together with its row in `schema_migrations` (name, SHA-256 of the SQL). A
session-level advisory lock makes concurrent `migrate()` calls (several nodes starting at once) queue, so
each migration runs exactly once. An applied migration whose file later changed is an error, not a re-run.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped,unused-ignore]

from .errors import CatalogueError, MigrationError

__all__ = ["Migration", "load_migrations", "migrate", "open_pool"]

_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_MIGRATION_LOCK = 0x48_54_6D_69_67_72_61  # "HTmigra": one advisory lock key for the whole product
_DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name text PRIMARY KEY,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Migration:
    name: str  # file name without ".sql", e.g. "0001_catalogue"
    sql: str

    def __post_init__(self) -> None:
        if not _MIGRATION_FILE.match(f"{self.name}.sql"):
            raise MigrationError(f"migration name {self.name!r} is not NNNN_lowercase_words")

    @property
    def number(self) -> int:
        return int(self.name[:4])

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def load_migrations() -> list[Migration]:
    """The shipped migrations in the order they apply; duplicate numbers are an error."""
    folder = importlib.resources.files("storage") / "migrations"
    found = sorted(
        (
            Migration(name=entry.name.removesuffix(".sql"), sql=entry.read_text(encoding="utf-8"))
            for entry in folder.iterdir()
            if _MIGRATION_FILE.match(entry.name)
        ),
        key=lambda migration: migration.number,
    )
    numbers = [migration.number for migration in found]
    if len(set(numbers)) != len(numbers):
        raise MigrationError(f"two migrations share a number: {[m.name for m in found]}")
    return found


async def open_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """An asyncpg pool whose connections map jsonb/json to Python dicts and lists, with the session in UTC."""
    try:
        return await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            server_settings={"timezone": "UTC", "application_name": "hangtar"},
        )
    except _DRIVER_ERRORS as exc:
        raise CatalogueError(f"cannot connect to the catalogue database: {exc}") from exc


async def migrate(pool: asyncpg.Pool, migrations: Sequence[Migration] | None = None) -> list[str]:
    """Apply the migrations not applied yet (the shipped ones by default); return their names in order."""
    wanted = list(migrations) if migrations is not None else load_migrations()
    applied_now: list[str] = []
    try:
        async with pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
            try:
                await conn.execute(_CREATE_LEDGER)
                rows = await conn.fetch("SELECT name, checksum FROM schema_migrations")
                done = {str(row["name"]): str(row["checksum"]) for row in rows}
                for migration in wanted:
                    if migration.name in done:
                        if done[migration.name] != migration.checksum:
                            raise MigrationError(f"migration {migration.name} changed after it was applied")
                        continue
                    try:
                        async with conn.transaction():
                            await conn.execute(migration.sql)
                            await conn.execute(
                                "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)",
                                migration.name,
                                migration.checksum,
                            )
                    except asyncpg.PostgresError as exc:
                        raise MigrationError(f"migration {migration.name} failed: {exc}") from exc
                    applied_now.append(migration.name)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    except _DRIVER_ERRORS as exc:
        raise CatalogueError(f"cannot migrate the catalogue database: {exc}") from exc
    return applied_now


async def _init_connection(conn: Any) -> None:
    for type_name in ("jsonb", "json"):
        await conn.set_type_codec(
            type_name, schema="pg_catalog", encoder=_json_dumps, decoder=json.loads, format="text"
        )


def _json_dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
