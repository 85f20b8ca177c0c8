"""The session's embedded cluster: how it runs, and how a second process (the CLI) joins it."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import stat
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from storage import EmbeddedDatabase, EmbeddedDatabaseError
from storage.embedded import SERVICE_USER
from storage.postmaster import ProcessKind, probe_process, read_postmaster_pid, socket_accepts
from tests.pg import PgCluster

REPO = Path(__file__).resolve().parents[3]

# What `hangtar recordings list` does first: join the database, use it, let go.
CLI = """
import asyncio, json, sys
from pathlib import Path
import asyncpg
from storage import EmbeddedDatabase

db = EmbeddedDatabase(Path(sys.argv[1]))
dsn = db.start()

async def query():
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT current_database()")
    finally:
        await conn.close()

print(json.dumps({"dsn": dsn, "owns": db.owns, "pid": db.pid, "database": asyncio.run(query())}))
db.stop()
"""


async def fetch(dsn: str, query: str) -> object:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


async def test_cluster_serves_the_hangtar_database_on_a_private_socket_only(pg: PgCluster) -> None:
    assert pg.server.owns
    assert pg.dsn == pg.server.dsn_for("hangtar")
    assert await fetch(pg.dsn, "SELECT current_database()") == "hangtar"
    assert await fetch(pg.dsn, "SHOW listen_addresses") == ""
    assert await fetch(pg.dsn, "SHOW unix_socket_directories") == str(pg.pgdata)
    assert await fetch(pg.dsn, "SHOW server_encoding") == "UTF8"
    assert await fetch(pg.dsn, "SELECT upper('árvíztűrő tükörfúrógép')") == "ÁRVÍZTŰRŐ TÜKÖRFÚRÓGÉP"
    mode = pg.pgdata.stat()
    assert stat.S_IMODE(mode.st_mode) == 0o700
    if os.geteuid() == 0:
        assert pwd.getpwuid(mode.st_uid).pw_name == SERVICE_USER
        postmaster = read_postmaster_pid(pg.pgdata)
        assert postmaster is not None
        owner = (await asyncio.to_thread(Path(f"/proc/{postmaster.pid}").stat)).st_uid
        assert owner == mode.st_uid  # not running as root


async def test_a_second_instance_joins_and_leaves_the_cluster_running(pg: PgCluster) -> None:
    second = EmbeddedDatabase(pg.data_dir)
    assert await asyncio.to_thread(second.start) == pg.dsn
    assert not second.owns
    assert second.pid == pg.server.pid
    await asyncio.to_thread(second.stop)
    assert await fetch(pg.dsn, "SELECT 1") == 1
    assert second.pid is None


async def test_a_cli_process_joins_the_running_cluster_and_does_not_stop_it(pg: PgCluster) -> None:
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", CLI, str(pg.data_dir)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report == {"dsn": pg.dsn, "owns": False, "pid": pg.server.pid, "database": "hangtar"}
    postmaster = read_postmaster_pid(pg.pgdata)
    assert postmaster is not None and postmaster.pid == pg.server.pid
    assert postmaster.socket_path is not None and socket_accepts(postmaster.socket_path)
    assert await fetch(pg.dsn, "SELECT 1") == 1


async def test_a_postmaster_that_is_not_ready_is_not_joined(pg: PgCluster) -> None:
    pid_file = pg.pgdata / "postmaster.pid"
    original = pid_file.read_text()
    try:
        pid_file.write_text(original.replace("ready", "starting"))
        impatient = EmbeddedDatabase(pg.data_dir, timeout=0.2)
        with pytest.raises(EmbeddedDatabaseError, match="is starting and not accepting"):
            await asyncio.to_thread(impatient.start)
        assert not impatient.owns
    finally:
        pid_file.write_text(original)
    assert await fetch(pg.dsn, "SELECT 1") == 1


def test_processes_are_told_apart(pg: PgCluster, tmp_path: Path) -> None:
    postmaster = read_postmaster_pid(pg.pgdata)
    assert postmaster is not None
    assert probe_process(postmaster.pid, pg.pgdata) is ProcessKind.POSTMASTER
    assert probe_process(postmaster.pid, tmp_path) is ProcessKind.OTHER  # another cluster's postmaster
    assert probe_process(os.getpid(), pg.pgdata) is ProcessKind.OTHER
    with subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    ) as child:
        assert probe_process(child.pid, pg.pgdata) is ProcessKind.OTHER
        child.kill()
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped yet: a zombie
        assert probe_process(child.pid, pg.pgdata) is ProcessKind.GONE
    assert probe_process(child.pid, pg.pgdata) is ProcessKind.GONE  # reaped
