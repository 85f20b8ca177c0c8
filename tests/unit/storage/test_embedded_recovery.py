"""A cluster of its own: first start by two starters at once, crashes, stale and garbled pid files.

Its data directory is deep enough that the socket cannot live in it, so the fallback socket directory is
exercised too. Every test leaves the cluster stopped.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from storage import EmbeddedDatabase
from storage.postmaster import read_postmaster_pid
from tests.pg import cluster_processes, kill_cluster, scratch_dir


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    with scratch_dir() as scratch:
        directory = scratch / ("hangtar-data-directory-on-a-deep-mount-" * 2)
        yield directory
        left_running = cluster_processes(directory / "pg")
        if left_running:  # a failed test: do not leak the postmaster
            kill_cluster(directory / "pg")
        shutil.rmtree(EmbeddedDatabase(directory).socket_dir, ignore_errors=True)
        assert not left_running, "a test left the cluster running"


async def fetch(dsn: str, query: str, *args: object) -> object:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def test_two_starters_at_once_share_one_cluster(data_dir: Path) -> None:
    first, second = EmbeddedDatabase(data_dir, durable=False), EmbeddedDatabase(data_dir, durable=False)
    dsns = await asyncio.gather(asyncio.to_thread(first.start), asyncio.to_thread(second.start))
    try:
        assert dsns[0] == dsns[1]
        assert sorted([first.owns, second.owns]) == [False, True]
        assert first.pid == second.pid
        info = read_postmaster_pid(first.pgdata)
        assert info is not None and info.socket_dir is not None
        # <data_dir>/pg/.s.PGSQL.5432 would exceed the 107-byte limit of a Unix socket path.
        assert len(str(first.pgdata / ".s.PGSQL.5432")) > 107
        assert info.socket_dir == first.socket_dir
        assert info.socket_dir.parent == Path(tempfile.gettempdir())
        assert info.socket_dir.name.startswith("hangtar-pg-")
        assert await fetch(dsns[0], "SELECT current_database()") == "hangtar"
    finally:
        await asyncio.to_thread(first.stop)
        await asyncio.to_thread(second.stop)
    assert read_postmaster_pid(first.pgdata) is None  # the owner stopped it, whichever it was


async def test_recovers_after_a_crash_and_a_reboot_with_the_data_intact(data_dir: Path) -> None:
    """The machine died: postmaster.pid, the socket and its lock survive, and their pid now names another
    process. PostgreSQL alone would refuse to start ("lock file already exists")."""
    crashed = EmbeddedDatabase(data_dir)
    dsn = await asyncio.to_thread(crashed.start)
    await fetch(dsn, "CREATE TABLE IF NOT EXISTS crash_probe (note text)")
    await fetch(dsn, "INSERT INTO crash_probe VALUES ($1)", "committed before the crash")
    info = read_postmaster_pid(crashed.pgdata)
    assert info is not None and info.socket_path is not None
    pid_path = crashed.pgdata / "postmaster.pid"
    lock_path = info.socket_path.with_name(info.socket_path.name + ".lock")
    assert kill_cluster(crashed.pgdata) == info.pid
    assert pid_path.exists() and lock_path.exists() and info.socket_path.exists()

    # It runs as the cluster's owner: a pid PostgreSQL may not signal it takes for dead by itself.
    owner = crashed.pgdata.stat().st_uid
    bystander = await asyncio.create_subprocess_exec(
        "cat", stdin=asyncio.subprocess.PIPE, cwd="/", user=owner if os.geteuid() == 0 else None
    )
    try:
        reused = str(bystander.pid)
        pid_path.write_text(pid_path.read_text().replace(str(info.pid), reused, 1))
        lock_path.write_text(lock_path.read_text().replace(str(info.pid), reused, 1))

        recovered = EmbeddedDatabase(data_dir)
        assert await asyncio.to_thread(recovered.start) == dsn
        try:
            assert recovered.owns
            assert recovered.pid not in (None, info.pid, bystander.pid)
            assert bystander.returncode is None  # left alone
            note = "committed before the crash"
            assert await fetch(dsn, "SELECT count(*) FROM crash_probe WHERE note = $1", note) >= 1
            # The object that owned the crashed postmaster must not stop its successor.
            await asyncio.to_thread(crashed.stop)
            assert await fetch(dsn, "SELECT 1") == 1
        finally:
            await asyncio.to_thread(recovered.stop)
    finally:
        assert bystander.stdin is not None
        bystander.stdin.close()
        await bystander.wait()


async def test_a_garbled_pid_file_is_cleared(data_dir: Path) -> None:
    db = EmbeddedDatabase(data_dir)
    if not (db.pgdata / "PG_VERSION").exists():  # run on its own: initialise the cluster first
        await asyncio.to_thread(db.start)
        await asyncio.to_thread(db.stop)
    (db.pgdata / "postmaster.pid").write_bytes(b"\x00\x00\x00\x00\n")  # a torn write after power loss
    dsn = await asyncio.to_thread(db.start)
    try:
        assert db.owns
        assert await fetch(dsn, "SELECT 1") == 1
    finally:
        await asyncio.to_thread(db.stop)
