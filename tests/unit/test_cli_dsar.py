"""``hangtar dsar|verify|audit|ropa`` against a real PostgreSQL and real FLAC files, with the exit codes a
script relies on."""

from __future__ import annotations

import argparse
import json
import os
import zipfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import asyncpg
import pytest

from siprec_server.cli_dsar import add_commands, run
from siprec_server.config import Config, load_config
from storage import FileBlobStore, ParticipantRole, Recording, migrate, open_pool
from tests.pg import PgCluster, running_cluster, scratch_dir
from tests.unit.storage.subject_samples import add_recording, flip_byte, make_tenant, party

CALLER = party("+3612345678", "Kovács Éva", ParticipantRole.CALLER)
AGENT = party("+3618889000", "ACME ügyfélszolgálat", ParticipantRole.CALLEE)
RECENTLY = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)


@pytest.fixture(scope="module")
def pg() -> Iterator[PgCluster]:
    with scratch_dir() as data_dir, running_cluster(data_dir) as cluster:
        yield cluster


@pytest.fixture
async def config(pg: PgCluster, tmp_path: Path) -> Config:
    return load_config(overrides={"data_dir": tmp_path / "data", "database_dsn": await pg.create_database()})


@pytest.fixture
async def pool(config: Config) -> AsyncIterator[asyncpg.Pool]:
    pool = await open_pool(config.database_dsn, max_size=2)
    try:
        await migrate(pool)
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def calls(pool: asyncpg.Pool, config: Config) -> list[Recording]:
    blobs = FileBlobStore(config.recordings_dir)
    acme = await make_tenant(pool, "acme-kft", "ACME Kft.")
    other = await make_tenant(pool, "masik-bt", "Másik Bt.")
    return [
        await add_recording(pool, blobs, tenant_id=acme, started_at=RECENTLY, caller=CALLER, callee=AGENT),
        await add_recording(
            pool,
            blobs,
            tenant_id=acme,
            started_at=RECENTLY + timedelta(hours=2),
            caller=AGENT,
            callee=CALLER,
            seed=2,
        ),
        await add_recording(
            pool, blobs, tenant_id=other, started_at=RECENTLY, caller=CALLER, callee=AGENT, seed=3
        ),
    ]


def _storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--database-dsn")


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hangtar")
    add_commands(parser.add_subparsers(dest="command", required=True), _storage_options)
    return parser.parse_args(argv)


async def hangtar(
    config: Config, capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int | None, str, str]:
    code = await run(parse(*argv), config)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def test_a_request_from_search_to_close(
    config: Config, calls: list[Recording], pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = await hangtar(
        config, capsys, "dsar", "search", "--tenant", "acme-kft", "06-1-234-5678", "--json"
    )
    assert code == 0
    assert [item["reference"] for item in json.loads(out)] == [calls[0].reference, calls[1].reference]
    code, out, _ = await hangtar(config, capsys, "dsar", "search", "--tenant", "acme-kft", "+36 1 234 5678")
    assert code == 0 and calls[0].reference in out and "2 recording(s)" in out

    received = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    code, out, _ = await hangtar(
        config,
        capsys,
        "dsar",
        "open",
        "--tenant",
        "acme-kft",
        "3612345678",
        "--requester",
        "Kovács Éva, kovacs.eva@example.hu",
        "--received",
        received,
        "--json",
        "--as",
        "anna@acme.hu",
    )
    assert code == 0
    case = json.loads(out)
    assert (case["number"], case["status"], case["overdue"], case["created_by"]) == (
        "+3612345678",
        "open",
        False,
        "anna@acme.hu",
    )
    code, out, _ = await hangtar(config, capsys, "dsar", "list", "--tenant", "acme-kft")
    assert code == 0 and case["id"] in out and "+3612345678" in out
    code, out, _ = await hangtar(
        config,
        capsys,
        "dsar",
        "extend",
        "--tenant",
        "acme-kft",
        case["id"],
        "--months",
        "2",
        "--reason",
        "recordings of three years to review",
    )
    assert code == 0 and out.startswith(f"access request {case['id']}: due ")
    code, _, err = await hangtar(
        config,
        capsys,
        "dsar",
        "extend",
        "--tenant",
        "acme-kft",
        case["id"],
        "--months",
        "1",
        "--reason",
        "again",
    )
    assert code == 4 and "extended already" in err

    code, out, _ = await hangtar(
        config, capsys, "dsar", "export", "--tenant", "acme-kft", case["id"], "--json"
    )
    assert code == 0
    exported = json.loads(out)
    bundle = Path(exported["bundle"]["path"])
    assert bundle.parent == config.data_dir / "access_requests"
    with zipfile.ZipFile(bundle) as archive:
        assert sum(name.endswith("audio.flac") for name in archive.namelist()) == 2
    assert exported["request"]["status"] == "exported"

    code, out, _ = await hangtar(
        config, capsys, "dsar", "delivered", "--tenant", "acme-kft", case["id"], "--note", "e-mail"
    )
    assert (code, out.strip()) == (0, f"access request {case['id']}: delivered")
    code, out, _ = await hangtar(config, capsys, "dsar", "close", "--tenant", "acme-kft", case["id"])
    assert code == 0 and bundle.name not in os.listdir(bundle.parent)
    code, out, _ = await hangtar(config, capsys, "dsar", "show", "--tenant", "acme-kft", case["id"])
    assert code == 0 and "closed" in out and "e-mail" in out
    assert "recordings of three years to review" in out and "closed_at" in out

    code, out, _ = await hangtar(config, capsys, "audit", "list", "--action", "recording.export", "--json")
    assert code == 0
    assert {entry["object_id"] for entry in json.loads(out)} == {str(calls[0].id), str(calls[1].id)}


async def test_refusals_and_not_found_have_their_exit_codes(
    config: Config, calls: list[Recording], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = await hangtar(config, capsys, "dsar", "search", "--tenant", "nincs-ilyen", "+3612345678")
    assert code == 3 and "nincs-ilyen" in err
    code, _, err = await hangtar(config, capsys, "dsar", "search", "--tenant", "acme-kft", "hívj fel")
    assert code == 2 and "not a phone number" in err
    code, out, _ = await hangtar(
        config,
        capsys,
        "dsar",
        "open",
        "--tenant",
        "acme-kft",
        "--reference",
        calls[0].reference.lower(),
        "--requester",
        "Kovács Éva",
        "--json",
    )
    case_id = json.loads(out)["id"]
    code, _, err = await hangtar(config, capsys, "dsar", "delivered", "--tenant", "acme-kft", case_id)
    assert code == 4 and "export the copy first" in err
    code, _, err = await hangtar(config, capsys, "dsar", "show", "--tenant", "masik-bt", case_id)
    assert code == 3
    code, _, _ = await hangtar(config, capsys, "verify", "HT-0000-0000")
    assert code == 3
    with pytest.raises(SystemExit) as usage:
        parse("verify")
    assert usage.value.code == 2
    with pytest.raises(SystemExit):
        parse("dsar", "search", "+3612345678")  # whose? a tenant or --system is required
    assert await run(argparse.Namespace(command="recordings"), config) is None


async def test_verify_finds_a_flipped_byte(
    config: Config, calls: list[Recording], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = await hangtar(config, capsys, "verify", "--all")
    assert (code, out.strip()) == (0, "checked 3 recording(s): 0 failed")
    assert calls[1].file_path is not None
    flip_byte(calls[1].file_path)
    code, out, _ = await hangtar(config, capsys, "verify", calls[1].reference)
    assert code == 1 and f"{calls[1].reference} audio: MISMATCH" in out
    code, out, _ = await hangtar(config, capsys, "verify", "--all", "--tenant", "masik-bt")
    assert code == 0  # the damaged file is another tenant's
    code, out, _ = await hangtar(config, capsys, "verify", "--all", "--json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 1 and lines[-1] == {"summary": {"recordings": 3, "failed": 1}}
    assert [line["ok"] for line in lines[:-1]] == [True, True, False]  # the damaged call started last


async def test_audit_verify_reports_a_tampered_entry(
    config: Config, calls: list[Recording], pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(3):
        await hangtar(config, capsys, "dsar", "search", "--tenant", "acme-kft", "+3612345678")
    code, out, _ = await hangtar(config, capsys, "audit", "verify")
    assert code == 0 and out.startswith("audit trail intact: 3 entries (1-3)")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        await conn.execute("""UPDATE audit_log SET details = '{"by": [], "found": 0}' WHERE seq = 2""")
        await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
    code, out, _ = await hangtar(config, capsys, "audit", "verify", "--json")
    report = json.loads(out)
    assert code == 1 and (report["ok"], report["broken_seq"], report["problem"]) == (False, 2, "hash")


async def test_ropa_prints_markdown_or_json(
    config: Config, calls: list[Recording], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = await hangtar(
        config, capsys, "ropa", "--tenant", "acme-kft", "--processor", "Üzemeltető Kft."
    )
    assert code == 0 and out.startswith("# Record of processing activities: call recording — ACME Kft.")
    assert "Üzemeltető Kft." in out
    target = tmp_path / "ropa.json"
    code, out, _ = await hangtar(config, capsys, "ropa", "--tenant", "acme-kft", "--json", "-o", str(target))
    assert code == 0
    data = json.loads(target.read_text(encoding="utf-8"))
    assert data["controller"]["slug"] == "acme-kft" and data["recordings"]["total"] == 2
    assert UUID(data["controller"]["id"])
