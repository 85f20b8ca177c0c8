"""``hangtar users|api-keys`` against a real catalogue: the bootstrap of a tenant's first admin, listing,
disabling, keys shown once; what is stored, and exit codes."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from siprec_server.cli import build_parser
from siprec_server.cli_users import run
from siprec_server.config import Config, load_config
from storage import open_pool
from storage.api_keys import ApiKeyStore
from storage.audit import Actor, AuditLog
from storage.login_limit import LoginLimiter
from storage.passwords import Passwords
from storage.tenants import TenantStore
from storage.users import UserStore
from tests.pg import PgCluster, running_cluster, scratch_dir


@pytest.fixture(scope="module")
def pg() -> Iterator[PgCluster]:
    with scratch_dir() as data_dir, running_cluster(data_dir) as cluster:
        yield cluster


@pytest.fixture
async def config(pg: PgCluster, tmp_path: Path) -> Config:
    dsn = await pg.create_database("cli_users")
    return load_config(environ={}, overrides={"data_dir": tmp_path, "database_dsn": dsn})


class Hangtar:
    def __init__(self, config: Config, capsys: pytest.CaptureFixture[str]) -> None:
        self.config = config
        self.capsys = capsys

    async def __call__(self, *argv: str) -> tuple[int | None, str, str]:
        args: argparse.Namespace = build_parser().parse_args(argv)
        code = await run(args, self.config)
        out, err = self.capsys.readouterr()
        return code, out, err

    async def json(self, *argv: str) -> Any:
        code, out, err = await self(*argv, "--json")
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def hangtar(config: Config, capsys: pytest.CaptureFixture[str]) -> Hangtar:
    return Hangtar(config, capsys)


@pytest.fixture
async def db(hangtar: Hangtar, config: Config) -> AsyncIterator[asyncpg.Pool]:
    # The tenant is made through the catalogue the commands migrate on first use.
    code, _, err = await hangtar("users", "list", "--tenant", "nobody")
    assert code == 3 and "no tenant 'nobody'" in err
    pool = await open_pool(config.database_dsn, max_size=2)
    try:
        await TenantStore(pool, AuditLog()).create(
            slug="acme", name="Acme Kft.", actor=Actor(name="t", origin="cli")
        )
        yield pool
    finally:
        await pool.close()


async def test_the_first_admin_gets_a_one_time_password(hangtar: Hangtar, db: asyncpg.Pool) -> None:
    code, out, err = await hangtar(
        "users",
        "create",
        "--tenant",
        "acme",
        "--role",
        "admin",
        "--email",
        "Anna@Acme.Example",
        "--as",
        "ops-anna",
    )
    assert code == 0, err
    match = re.search(r"^one-time password: (\S+)$", out, re.MULTILINE)
    assert match is not None and len(match[1]) >= 16
    assert out.startswith("created user anna@acme.example (admin) in tenant acme")
    stored = await db.fetchrow("SELECT password_hash, must_change_password FROM users")
    assert stored["password_hash"].startswith("$argon2id$") and stored["must_change_password"]
    users = UserStore(db, AuditLog(), passwords=Passwords(), limiter=LoginLimiter(db))
    user = await users.authenticate("anna@acme.example", match[1], "192.0.2.1")
    assert user is not None and user.must_change_password
    entry = await db.fetchrow("SELECT actor, origin, details FROM audit_log WHERE action = 'user.create'")
    assert (entry["actor"], entry["origin"]) == ("ops-anna", "cli")
    assert match[1] not in str(entry["details"])

    code, _, err = await hangtar(
        "users", "create", "--tenant", "acme", "--role", "viewer", "--email", "ANNA@acme.example"
    )
    assert code == 1 and "already exists" in err
    code, _, err = await hangtar(
        "users", "create", "--tenant", "acme", "--role", "viewer", "--email", "no-at-sign"
    )
    assert code == 2 and "not an e-mail address" in err
    with pytest.raises(SystemExit):
        build_parser().parse_args(
            ["users", "create", "--tenant", "acme", "--role", "root", "--email", "x@y.hu"]
        )


async def test_users_are_listed_reroled_and_disabled(hangtar: Hangtar, db: asyncpg.Pool) -> None:
    for email, role in (("anna@acme.example", "admin"), ("eva@acme.example", "supervisor")):
        assert (await hangtar("users", "create", "--tenant", "acme", "--role", role, "--email", email))[
            0
        ] == 0
    code, out, _ = await hangtar("users", "list", "--tenant", "acme")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["EMAIL", "ROLE", "STATE", "LAST", "LOGIN", "(UTC)"]
    assert lines[1].split() == ["anna@acme.example", "admin", "must", "set", "password", "-"]
    assert (
        await hangtar("users", "set-role", "--tenant", "acme", "--email", "Eva@acme.example", "--role", "dpo")
    )[1] == "eva@acme.example: supervisor → dpo\n"
    code, out, _ = await hangtar("users", "disable", "--tenant", "acme", "--email", "eva@acme.example")
    assert code == 0 and "disabled user eva@acme.example" in out
    listed = await hangtar.json("users", "list", "--tenant", "acme")
    assert [(u["email"], u["role"], u["disabled_at"] is not None) for u in listed] == [
        ("anna@acme.example", "admin", False),
        ("eva@acme.example", "dpo", True),
    ]
    code, _, err = await hangtar("users", "disable", "--tenant", "acme", "--email", "anna@acme.example")
    assert code == 1 and "last active admin" in err
    code, _, err = await hangtar("users", "disable", "--tenant", "acme", "--email", "nobody@acme.example")
    assert code == 3 and "no such user" in err


async def test_an_api_key_is_printed_once_and_revoked_by_its_prefix(
    hangtar: Hangtar, db: asyncpg.Pool
) -> None:
    code, out, err = await hangtar(
        "api-keys", "create", "--tenant", "acme", "--name", "CRM integráció", "--role", "viewer"
    )
    assert code == 0, err
    match = re.search(r"^key: (htk_([0-9a-f]{8})_\S{43})$", out, re.MULTILINE)
    assert match is not None
    secret, prefix = match[1], match[2]
    keys = ApiKeyStore(db, AuditLog())
    assert (await keys.resolve(secret)) is not None
    code, out, _ = await hangtar("api-keys", "list", "--tenant", "acme")
    assert f"htk_{prefix}_…" in out and secret not in out and "active" in out
    listed = await hangtar.json("api-keys", "list", "--tenant", "acme")
    assert [(k["name"], k["role"], k["prefix"]) for k in listed] == [("CRM integráció", "viewer", prefix)]
    assert secret not in json.dumps(listed)
    code, out, err = await hangtar("api-keys", "revoke", "--tenant", "acme", f"htk_{prefix}_…")
    assert code == 0, err
    assert out == f"revoked API key 'CRM integráció' (htk_{prefix}_…) of tenant acme\n"
    assert await keys.resolve(secret) is None
    assert "revoked" in (await hangtar("api-keys", "list", "--tenant", "acme"))[1]
    code, _, err = await hangtar("api-keys", "revoke", "--tenant", "acme", "0badc0de")
    assert code == 3 and "no such API key" in err
    trail = [
        dict(r) for r in await db.fetch("SELECT action, details FROM audit_log WHERE object_kind = 'api_key'")
    ]
    assert [r["action"] for r in trail] == ["api_key.create", "api_key.revoke"]
    assert secret[13:] not in json.dumps([str(r) for r in trail])
