"""``hangtar retention|holds|consent|erase`` against a real catalogue: output, exit codes and effects."""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from siprec_server.cli_retention import add_commands, run
from siprec_server.config import Config, load_config
from storage import FileBlobStore, migrate, open_pool
from tests.pg import PgCluster, running_cluster, scratch_dir
from tests.unit.storage.retention_samples import CALLEE, CALLER, OTHER, T0, add_recording, make_tenant, row


@pytest.fixture(scope="module")
def pg() -> Iterator[PgCluster]:
    with scratch_dir() as data_dir, running_cluster(data_dir) as cluster:
        yield cluster


def storage_options(parser: argparse.ArgumentParser) -> None:
    """What ``hangtar`` adds to every command that opens the catalogue."""
    parser.add_argument("--config", type=Path)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--database-dsn")
    parser.add_argument("--log-level")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="hangtar")
    add_commands(root.add_subparsers(dest="command", required=True), storage_options)
    return root


@dataclass
class Hangtar:
    config: Config
    pool: asyncpg.Pool
    blobs: FileBlobStore
    capsys: pytest.CaptureFixture[str]

    async def __call__(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = await run(parser().parse_args(argv), self.config)
        assert code is not None
        out, err = self.capsys.readouterr()
        return code, out, err

    async def json(self, *argv: str) -> Any:
        code, out, err = await self(*argv, "--json")
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
async def hangtar(
    pg: PgCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> AsyncIterator[Hangtar]:
    dsn = await pg.create_database("cli_retention")
    config = load_config(environ={}, overrides={"data_dir": tmp_path, "database_dsn": dsn})
    pool = await open_pool(dsn, max_size=2)
    try:
        await migrate(pool)
        yield Hangtar(config=config, pool=pool, blobs=FileBlobStore(config.recordings_dir), capsys=capsys)
    finally:
        await pool.close()


async def test_other_commands_are_not_ours(hangtar: Hangtar) -> None:
    assert await run(argparse.Namespace(command="recordings"), hangtar.config) is None


async def test_classes_and_options(hangtar: Hangtar) -> None:
    await make_tenant(hangtar.pool, "acme")
    presets = await hangtar.json("retention", "classes", "list")
    assert (
        len(presets) == 8 and {"code": "investment_services", "max_days": 2557}.items() <= presets[-2].items()
    )
    code, out, _ = await hangtar(
        "retention",
        "classes",
        "add",
        "--tenant",
        "acme",
        "sales_90d",
        "--name",
        "Sales, 90 days",
        "--days",
        "90",
        "--source",
        "balancing test 2026-03",
        "--as",
        "anna@example.hu",
    )
    assert code == 0 and out.startswith("sales_90d") and "own" in out
    code, _, err = await hangtar(
        "retention", "classes", "add", "--tenant", "acme", "sales_90d", "--name", "x", "--days", "1"
    )
    assert code == 2 and "already has" in err
    code, _, err = await hangtar(
        "retention", "classes", "add", "--tenant", "nobody", "x", "--name", "x", "--days", "1"
    )
    assert code == 3 and "no tenant" in err
    assert await hangtar(
        "retention", "options", "set", "--tenant", "acme", "quality_60d", "sales_90d", "none"
    ) == (
        0,
        "quality_60d                   60 d  Quality assurance, 60 days  [legitimate_interest; GDPR Art. 6(1)(f); "
        "product default, written balancing test] default\n"
        "sales_90d                     90 d  Sales, 90 days  [legitimate_interest; balancing test 2026-03] own\n"
        "none                           0 d  Not kept  [legitimate_interest; GDPR Art. 5(1)(c),(e)]\n",
        "",
    )
    shown = await hangtar.json("retention", "options", "show", "--tenant", "acme")
    assert shown["default"]["code"] == "quality_60d" and [o["code"] for o in shown["others"]] == [
        "sales_90d",
        "none",
    ]
    five = ("none", "consent", "contract_evidence", "telecom_fault_reports", "financial_complaints")
    code, _, err = await hangtar("retention", "options", "set", "--tenant", "acme", "quality_60d", *five)
    assert code == 2 and "at most 4" in err
    code, _, err = await hangtar("retention", "options", "set", "--tenant", "acme", "no_such_class")
    assert code == 3 and "no_such_class" in err


async def test_set_refuses_shortening_a_statutory_recording(hangtar: Hangtar) -> None:
    gas = await make_tenant(hangtar.pool, "budapest-gas")
    call = await add_recording(
        hangtar.pool,
        hangtar.blobs,
        tenant_id=gas,
        class_code="utility_customer_service",
        basis="legal_obligation",
    )
    code, _, err = await hangtar("retention", "set", call.reference.lower(), "--days", "30")
    assert code == 4 and "Fgytv. 17/B" in err
    changed = await hangtar.json("retention", "set", call.reference, "--class", "financial_complaints")
    assert (
        changed["new_class"] == "financial_complaints"
        and changed["new_expires_at"] == "2031-11-28T14:03:07.250000Z"
    )
    code, _, err = await hangtar("retention", "set", "HT-0000-0000", "--days", "3")
    assert code == 3
    with pytest.raises(SystemExit):  # exactly one of --class and --days
        parser().parse_args(["retention", "set", call.reference])


async def test_holds_release_erase_and_sweep(hangtar: Hangtar) -> None:
    acme = await make_tenant(hangtar.pool, "acme")
    call = await add_recording(hangtar.pool, hangtar.blobs, tenant_id=acme)
    expired = await add_recording(hangtar.pool, hangtar.blobs, tenant_id=acme, numbers=(OTHER,))
    placed = await hangtar.json(
        "holds",
        "place",
        "--number",
        "06 1 234 5678",
        "--from",
        "2026-11-01",
        "--until",
        "2026-12-01T00:00:00+01:00",
        "--reason",
        "NAIH-1234-5/2026",
        "--tenant",
        "acme",
        "--as",
        "anna@example.hu",
    )
    assert placed["number"] == CALLER and placed["covered"] == [str(call.id)]
    assert (
        placed["from_at"] == "2026-11-01T00:00:00.000000Z"
        and placed["until_at"] == "2026-11-30T23:00:00.000000Z"
    )
    hold_id = placed["id"]
    code, _, err = await hangtar("erase", call.reference)
    assert code == 4 and "NAIH-1234-5/2026" in err
    listed = await hangtar.json("holds", "list", "--tenant", "acme")
    assert [h["id"] for h in listed] == [hold_id]

    dry = await hangtar.json("retention", "sweep", "--dry-run", "--as-of", "2027-06-01T00:00:00Z")
    assert (dry["due"], dry["held"], dry["deleted"]) == (1, 1, 0)
    assert await row(hangtar.pool, expired.id) is not None

    assert (await hangtar("holds", "request-release", hold_id, "--as", "anna@example.hu"))[0] == 0
    code, _, err = await hangtar("holds", "approve-release", hold_id, "--as", "anna@example.hu")
    assert code == 4 and "different person" in err
    code, out, _ = await hangtar("holds", "approve-release", hold_id, "--as", "bela@example.hu")
    assert code == 0 and "1 recording(s) no longer restricted" in out

    swept = await hangtar.json("retention", "sweep", "--as-of", "2027-06-01T00:00:00Z")
    assert swept["deleted"] == 2 and {r["reference"] for r in swept["recordings"]} == {
        call.reference,
        expired.reference,
    }
    assert call.path is not None and not call.path.exists()
    again = await hangtar.json("retention", "sweep", "--as-of", "2027-06-01")
    assert again["deleted"] == 0 and again["as_of"] == "2027-06-01T00:00:00.000000Z"
    with pytest.raises(SystemExit):  # a time without an offset is ambiguous
        parser().parse_args(["retention", "sweep", "--as-of", "2027-06-01T00:00:00"])


async def test_erase_and_consent_withdrawal(hangtar: Hangtar) -> None:
    acme = await make_tenant(hangtar.pool, "acme")
    plain = await add_recording(hangtar.pool, hangtar.blobs, tenant_id=acme, numbers=(CALLEE,))
    by_consent = await add_recording(
        hangtar.pool,
        hangtar.blobs,
        tenant_id=acme,
        class_code="consent",
        basis="consent",
        consent_state="given",
    )
    statutory = await add_recording(
        hangtar.pool,
        hangtar.blobs,
        tenant_id=acme,
        numbers=(CALLEE,),
        class_code="telecom_fault_reports",
        basis="legal_obligation",
        started_at=T0 + timedelta(hours=1),
    )
    withdrawn = await hangtar.json("consent", "withdraw", "--tenant", "acme", "+36 1 234 5678")
    assert withdrawn["erased"] == [by_consent.reference] and withdrawn["number"] == CALLER
    assert await row(hangtar.pool, plain.id) is not None

    code, out, _ = await hangtar(
        "erase", "--number", "06 30 123 4567", "--tenant", "acme", "--reason", "ticket 4711"
    )
    assert code == 4  # one erased, one refused
    assert (
        f"{plain.reference}  erased" in out
        and f"{statutory.reference}  refused" in out
        and "Eht. 141 §" in out
    )
    code, _, err = await hangtar("erase", "--number", CALLEE)
    assert code == 2 and "--tenant" in err
    code, _, _ = await hangtar("erase")
    assert code == 2
    code, _, err = await hangtar("erase", str(UUID(int=7)))
    assert code == 3
    code, _, err = await hangtar("consent", "withdraw", "--tenant", "acme", "nobody")
    assert code == 2 and "not a phone number" in err


async def test_tenant_system_and_operator_scopes(hangtar: Hangtar) -> None:
    acme = await make_tenant(hangtar.pool, "acme")
    mine = await add_recording(hangtar.pool, hangtar.blobs, tenant_id=acme, numbers=(OTHER,))
    unclaimed = await add_recording(
        hangtar.pool, hangtar.blobs, tenant_id=None, numbers=(OTHER,), started_at=T0 + timedelta(hours=1)
    )
    # a tenant reaches neither the unclaimed calls nor, with --system, its own
    code, _, err = await hangtar("retention", "set", unclaimed.reference, "--days", "90", "--tenant", "acme")
    assert code == 3 and "no recording" in err
    code, _, _ = await hangtar("retention", "set", mine.reference, "--days", "90", "--system")
    assert code == 3
    changed = await hangtar.json("retention", "set", unclaimed.reference, "--days", "90", "--system")
    assert changed["new_expires_at"].startswith("2027-02-26T15:03:07")
    # a hold on a number is a tenant's or the operator's; --system holds one unclaimed recording
    code, _, err = await hangtar("holds", "place", "--number", OTHER, "--reason", "dispute", "--system")
    assert code == 2 and "--system goes with --recording" in err
    held = await hangtar.json(
        "holds", "place", "--recording", unclaimed.reference, "--reason", "dispute", "--system"
    )
    assert held["tenant_id"] is None and held["covered"] == [str(unclaimed.id)]
    assert [h["id"] for h in await hangtar.json("holds", "list", "--tenant", "acme")] == []
    assert [h["id"] for h in await hangtar.json("holds", "list", "--system")] == [held["id"]]
    assert [h["id"] for h in await hangtar.json("holds", "list")] == [held["id"]]
    # --system erases the unclaimed calls only (the held one is refused); the tenant's stays
    code, out, _ = await hangtar("erase", "--number", "+36 20 555 0123", "--system")
    assert code == 4 and f"{unclaimed.reference}  refused" in out and mine.reference not in out
    assert await row(hangtar.pool, mine.id) is not None
    with pytest.raises(SystemExit):  # a withdrawal is always for one controller
        parser().parse_args(["consent", "withdraw", OTHER])
    assert "one of the arguments --tenant --system is required" in hangtar.capsys.readouterr().err
    # without --tenant or --system: the operator, on any tenant's recording
    erased = await hangtar.json("erase", mine.reference)
    assert erased["reference"] == mine.reference and await row(hangtar.pool, mine.id) is None
