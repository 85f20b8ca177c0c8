"""``hangtar tenants|numbers|sources|policies`` against a real catalogue: output, exit codes, audit actors."""

from __future__ import annotations

import argparse
import getpass
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from siprec_server.cli_tenants import add_commands, run
from siprec_server.config import Config, load_config
from storage import Catalogue, open_pool
from tests.pg import PgCluster, running_cluster, scratch_dir
from tests.unit.storage.samples import new_recording


@pytest.fixture(scope="module")
def pg() -> Iterator[PgCluster]:
    with scratch_dir() as data_dir, running_cluster(data_dir) as cluster:
        yield cluster


@pytest.fixture
async def config(pg: PgCluster, tmp_path: Path) -> Config:
    dsn = await pg.create_database("cli_tenants")
    return load_config(environ={}, overrides={"data_dir": tmp_path, "database_dsn": dsn})


@pytest.fixture
async def db(config: Config) -> AsyncIterator[asyncpg.Pool]:
    pool = await open_pool(config.database_dsn, max_size=2)
    try:
        yield pool
    finally:
        await pool.close()


def _storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--database-dsn")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hangtar")
    commands = parser.add_subparsers(dest="command", required=True)
    add_commands(commands, _storage_options)
    return parser


class Hangtar:
    def __init__(self, config: Config, capsys: pytest.CaptureFixture[str]) -> None:
        self.config = config
        self.capsys = capsys

    async def __call__(self, *argv: str) -> tuple[int | None, str, str]:
        code = await run(_parser().parse_args(argv), self.config)
        out, err = self.capsys.readouterr()
        return code, out, err

    async def json(self, *argv: str) -> Any:
        code, out, err = await self(*argv, "--json")
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def hangtar(config: Config, capsys: pytest.CaptureFixture[str]) -> Hangtar:
    return Hangtar(config, capsys)


async def _acme(hangtar: Hangtar) -> None:
    code, out, err = await hangtar(
        "tenants",
        "create",
        "acme",
        "--name",
        "Acme Kft.",
        "--hint",
        "SP-HU-0042/Budapest Iroda",
        "--as",
        "anna",
    )
    assert code == 0, err
    assert "created tenant acme (Acme Kft.)" in out


async def test_an_operator_sets_up_a_tenant_and_dry_runs_a_call(hangtar: Hangtar, db: asyncpg.Pool) -> None:
    await _acme(hangtar)
    assert (
        await hangtar("numbers", "add", "--tenant", "acme", "06-1-234-5678", "--label", "ügyfélszolgálat")
    )[0] == 0
    assert (await hangtar("numbers", "add", "--tenant", "acme", "+36 1 234 56xx", "--range"))[0] == 0
    assert (await hangtar("numbers", "add", "--tenant", "acme", "201", "--extension"))[0] == 0
    numbers = await hangtar.json("numbers", "list", "--tenant", "acme")
    assert [(n["kind"], n["value"], n["label"]) for n in numbers] == [
        ("extension", "201", None),
        ("number", "+3612345678", "ügyfélszolgálat"),
        ("range", "+36123456", None),
    ]
    code, out, err = await hangtar(
        "policies", "set", "--tenant", "acme", "--number", "+36 1 234 5678", "--basis", "legal_obligation",
        "--statute", "Fgytv. 17/B §", "--purpose", "customer service", "--retention", "utility_customer_service",
    )  # fmt: skip
    assert code == 0, err
    assert "number +3612345678 both: version 1 is current" in out
    decision = await hangtar.json(
        "policies", "test", "--calling", "06 30 123 4567", "--called", "+36 1 234 5678"
    )
    assert decision["record"] is True
    assert (decision["tenant_slug"], decision["attributed_by"], decision["scope"]) == (
        "acme",
        "number",
        "number",
    )
    assert (decision["basis"], decision["statute"], decision["retention"]["code"]) == (
        "legal_obligation",
        "Fgytv. 17/B §",
        "utility_customer_service",
    )
    assert (decision["direction"], decision["direction_inferred"]) == ("inbound", True)
    assert decision["numbers"] == ["+36301234567", "+3612345678"]
    code, out, _ = await hangtar(
        "policies", "test", "--calling", "sip:201@pbx.example.hu", "--called", "06 30 123 4567",
        "--hint", "sp-hu-0042/budapest iroda", "--announce",
    )  # fmt: skip
    assert code == 0
    assert "tenant             acme (Acme Kft.)" in out
    assert "attributed by      hint" in out
    assert "direction          outbound (inferred)" in out
    assert "Az Acme Kft. tájékoztatja Önt, hogy a beszélgetést rögzítjük." in out
    assert "This call is recorded by Acme Kft." in out
    actors = await db.fetch("SELECT action, actor, origin FROM audit_log ORDER BY seq")
    assert [tuple(row) for row in actors] == [
        ("tenant.create", "anna", "cli"),
        ("number.add", f"cli:{getpass.getuser()}", "cli"),
        ("number.add", f"cli:{getpass.getuser()}", "cli"),
        ("number.add", f"cli:{getpass.getuser()}", "cli"),
        ("policy.change", f"cli:{getpass.getuser()}", "cli"),
    ]


async def test_show_update_and_list_tenants(hangtar: Hangtar) -> None:
    await _acme(hangtar)
    code, out, _ = await hangtar(
        "tenants",
        "update",
        "acme",
        "--add-hint",
        "acme.voip.example.hu",
        "--remove-hint",
        "SP-HU-0042/Budapest Iroda",
    )
    assert code == 0
    assert "hints      acme.voip.example.hu" in out
    shown = await hangtar.json("tenants", "show", "acme")
    assert (shown["name"], shown["hints"], shown["numbers"], shown["policies"]) == (
        "Acme Kft.",
        ["acme.voip.example.hu"],
        [],
        [],
    )
    code, out, _ = await hangtar("tenants", "show", "acme")
    assert "none of its own: the system policy applies" in out
    assert (await hangtar("tenants", "update", "acme"))[0] == 2
    code, _, err = await hangtar("tenants", "update", "acme", "--remove-hint", "no-such-hint")
    assert (code, "no hint 'no-such-hint'" in err) == (3, True)
    await hangtar("tenants", "create", "gyor", "--name", "Győri Fuvar Kft.")
    assert [t["slug"] for t in await hangtar.json("tenants", "list")] == ["acme", "gyor"]


async def test_sources(hangtar: Hangtar) -> None:
    await _acme(hangtar)
    assert (await hangtar("sources", "add", "--tenant", "acme", "198.51.100.0/28"))[0] == 0
    code, _, err = await hangtar("sources", "add", "--tenant", "acme", "198.51.100.7/28")
    assert code == 2 and "did you mean 198.51.100.0/28" in err
    decision = await hangtar.json(
        "policies",
        "test",
        "--calling",
        "+36 30 123 4567",
        "--called",
        "+36 1 999 9999",
        "--source",
        "198.51.100.9",
    )
    assert (decision["tenant_slug"], decision["attributed_by"]) == ("acme", "source")
    assert (await hangtar("sources", "list", "--tenant", "acme"))[1] == "198.51.100.0/28\n"
    assert (await hangtar("sources", "remove", "--tenant", "acme", "198.51.100.0/28"))[0] == 0
    assert await hangtar.json("sources", "list", "--tenant", "acme") == []


async def test_exit_codes(hangtar: Hangtar, db: asyncpg.Pool) -> None:
    await _acme(hangtar)
    await hangtar("tenants", "create", "gyor", "--name", "Győri Fuvar Kft.")
    await hangtar("numbers", "add", "--tenant", "acme", "+36 1 234 5678")
    code, _, err = await hangtar("numbers", "add", "--tenant", "gyor", "06 1 234 5678")
    assert (code, err.strip()) == (
        1,
        "hangtar: number +3612345678 already belongs to another tenant (owned by tenant 'acme')",
    )
    code, _, err = await hangtar("numbers", "add", "--tenant", "acme", "06 1 234")
    assert code == 2 and "not a valid phone number" in err
    assert (await hangtar("tenants", "show", "nincs-ilyen"))[0] == 3
    assert (await hangtar("numbers", "remove", "--tenant", "gyor", "+36 1 234 5678"))[0] == 3  # acme's
    code, _, err = await hangtar(
        "policies", "set", "--tenant", "acme", "--basis", "legal_obligation", "--purpose", "complaints",
        "--retention", "financial_complaints",
    )  # fmt: skip
    assert code == 4 and "refused: a legal obligation must name the statute" in err
    code, _, err = await hangtar(
        "policies", "set", "--system", "--number", "+36 1 234 5678", "--not-recorded"
    )
    assert code == 2 and "--number needs --tenant" in err
    code, _, err = await hangtar("policies", "set", "--tenant", "acme", "--basis", "consent", "--purpose", "x",
                                 "--retention", "consent", "--yes-digit", "2")  # fmt: skip
    assert code == 2 and "three different keys" in err
    tenant_id = await db.fetchval("SELECT id FROM tenants WHERE slug = 'acme'")
    await Catalogue(db).create(new_recording(tenant_id=tenant_id, numbers=["+3612345678", "+36301234567"]))
    code, _, err = await hangtar("tenants", "delete", "acme")
    assert code == 4 and "1 recording(s)" in err
    assert (await hangtar("tenants", "delete", "gyor"))[0] == 0


async def test_policy_history_and_removal(hangtar: Hangtar) -> None:
    await _acme(hangtar)
    await hangtar("policies", "set", "--tenant", "acme", "--basis", "legitimate_interest", "--purpose",
                  "contract evidence", "--retention", "contract_evidence")  # fmt: skip
    await hangtar("policies", "set", "--tenant", "acme", "--direction", "outbound", "--not-recorded")
    await hangtar("policies", "set", "--tenant", "acme", "--basis", "consent", "--purpose", "training",
                  "--retention", "consent", "--consent-window", "15", "--prompt-version", "2026-11")  # fmt: skip
    current = await hangtar.json("policies", "list", "--tenant", "acme")
    assert [(p["direction"], p["version"], p["record"], p["basis"]) for p in current] == [
        ("both", 2, True, "consent"),
        ("outbound", 1, False, None),
    ]
    assert current[0]["consent"] == {
        "window_seconds": 15,
        "yes_digit": "1",
        "no_digit": "2",
        "stop_digit": "9",
        "prompt_version": "2026-11",
    }
    history = await hangtar.json("policies", "history", "--tenant", "acme", "--direction", "both")
    assert [(p["version"], p["retention"], p["superseded_at"] is None) for p in history] == [
        (1, "contract_evidence", False),
        (2, "consent", True),
    ]
    code, out, _ = await hangtar("policies", "history", "--tenant", "acme")
    assert code == 0 and out.count("\ntenant ") == 3
    code, out, _ = await hangtar("policies", "remove", "--tenant", "acme", "--direction", "outbound")
    assert code == 0 and "the broader scope's policy applies" in out
    assert (await hangtar("policies", "remove", "--tenant", "acme", "--direction", "outbound"))[0] == 3
    system = await hangtar.json("policies", "list", "--system")
    assert [(p["version"], p["retention"]) for p in system] == [(1, "quality_60d")]


async def test_other_commands_are_not_ours(config: Config) -> None:
    assert await run(argparse.Namespace(command="recordings", action="list"), config) is None
