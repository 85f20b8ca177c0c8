"""``hangtar keys list|rotate|rewrap`` against a real catalogue and the server's key file."""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from siprec_server.cli_keys import add_commands, run
from siprec_server.config import Config, load_config
from storage import migrate, open_pool
from storage.audit import Actor, AuditLog
from storage.keys import KeyFileProvider, RecordingKeys
from storage.tenants import TenantStore
from tests.pg import PgCluster, running_cluster, scratch_dir


@pytest.fixture(scope="module")
def pg() -> Iterator[PgCluster]:
    with scratch_dir() as data_dir, running_cluster(data_dir) as cluster:
        yield cluster


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="hangtar")

    def storage_options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--config", type=Path)

    add_commands(root.add_subparsers(dest="command", required=True), storage_options)
    return root


@pytest.fixture
async def config(pg: PgCluster, tmp_path: Path) -> AsyncIterator[Config]:
    dsn = await pg.create_database("cli_keys")
    config = load_config(environ={}, overrides={"data_dir": tmp_path, "database_dsn": dsn})
    pool = await open_pool(dsn, max_size=2)
    try:
        await migrate(pool)
        tenant = await TenantStore(pool, AuditLog()).create(
            slug="acme-kft", name="Acme Kft.", actor=Actor(name="cli:root")
        )
        keys = RecordingKeys(pool, KeyFileProvider(config.key_file_path))
        async with pool.acquire() as conn:
            for _ in range(3):
                await keys.create(conn, uuid4(), tenant.id)
    finally:
        await pool.close()
    yield config


async def hangtar(config: Config, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    capsys.readouterr()
    code = await run(parser().parse_args(["keys", *argv]), config)
    assert code is not None
    out, err = capsys.readouterr()
    return code, json.loads(out) if "--json" in argv and out else out, err


async def test_rotate_with_rewrap_moves_the_tenants_data_keys(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    code, listed, _ = await hangtar(config, capsys, "list", "--tenant", "acme-kft", "--json")
    assert code == 0
    assert [(v["key_ref"].rsplit(":", 1)[1], v["current"], v["data_keys"]) for v in listed] == [
        ("1", True, 3)
    ]

    code, report, _ = await hangtar(config, capsys, "rotate", "--tenant", "acme-kft", "--rewrap", "--json")
    assert code == 0
    assert report["key_ref"].endswith(":2") and report["rewrapped"] == 3 and report["failed"] == []

    code, out, _ = await hangtar(config, capsys, "list", "--tenant", "acme-kft")
    lines = out.splitlines()
    assert ":1 " in lines[0] and "0 data keys" in lines[0] and "current" not in lines[0]
    assert "3 data keys" in lines[1] and lines[1].endswith("current")
    # The key file holds both versions; key material never reaches the output.
    document = json.loads(config.key_file_path.read_text())
    assert all(entry["key"] not in out for entry in document["keys"])


async def test_rewrap_alone_and_the_system_key(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    code, report, _ = await hangtar(config, capsys, "rewrap", "--tenant", "acme-kft", "--json")
    assert (code, report["rewrapped"]) == (0, 0)  # nothing older than the current version
    code, out, _ = await hangtar(config, capsys, "rotate", "--system")
    assert code == 0 and "the unclaimed calls: new key keyfile:system:" in out


async def test_an_unknown_tenant_and_a_missing_scope(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = await hangtar(config, capsys, "rotate", "--tenant", "nobody")
    assert code == 3 and "nobody" in err
    with pytest.raises(SystemExit):
        parser().parse_args(["keys", "rotate"])
