"""A real PostgreSQL for tests: the product's own embedded cluster, and throwaway databases on it.

- `running_cluster(data_dir)` starts (or joins) the cluster of a data directory for a `with` block; a server
  process later started on the same data directory joins it instead of starting its own.
- `PgCluster.create_database()` makes an empty database for a test that needs one to itself (a CREATE
  DATABASE each: share a migrated one and truncate where you can).
- `kill_cluster(pgdata)` crashes a cluster the hard way, as a power cut would.
- `scratch_dir()` gives a data directory outside pytest's temp tree. Put clusters there: pytest keeps
  /tmp/pytest-of-<user> at 0700, resetting it whenever any session starts, which locks the cluster's
  unprivileged owner (when the tests run as root) out of its own data directory.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from storage import EmbeddedDatabase
from storage.postmaster import ProcessKind, probe_process, read_postmaster_pid

__all__ = [
    "PgCluster",
    "cluster_processes",
    "kill_cluster",
    "reset_catalogue",
    "running_cluster",
    "scratch_dir",
]


@dataclass(frozen=True, slots=True)
class PgCluster:
    data_dir: Path
    server: EmbeddedDatabase
    dsn: str  # the product's "hangtar" database

    @property
    def pgdata(self) -> Path:
        return self.server.pgdata

    def dsn_for(self, database: str) -> str:
        return self.server.dsn_for(database)

    async def create_database(self, prefix: str = "test") -> str:
        """A new empty database; returns its DSN. Left for the cluster's teardown to discard."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(self.dsn_for("postgres"))
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.dsn_for(name)


@contextmanager
def running_cluster(data_dir: Path, *, durable: bool = False) -> Iterator[PgCluster]:
    """Not durable by default: no fsync makes initdb and every commit much faster, and a test cluster
    never has to survive a power cut."""
    server = EmbeddedDatabase(data_dir, durable=durable)
    dsn = server.start()
    try:
        yield PgCluster(data_dir=data_dir, server=server, dsn=dsn)
    finally:
        server.stop()


@contextmanager
def scratch_dir(prefix: str = "hangtar-test-") -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def cluster_processes(pgdata: Path) -> list[int]:
    """The running postmaster of `pgdata` followed by its children (checkpointer, backends...), or []."""
    info = read_postmaster_pid(pgdata)
    if info is None or probe_process(info.pid, pgdata) is not ProcessKind.POSTMASTER:
        return []
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        if ppid == info.pid:
            children.append(int(entry.name))
    return [info.pid, *children]


def kill_cluster(pgdata: Path, timeout: float = 10.0) -> int:
    """SIGKILL the postmaster and all its children, wait until every one has exited; returns the old pid.

    postmaster.pid, the socket and its lock file stay behind, exactly as after a crash.
    """
    pids = cluster_processes(pgdata)
    if not pids:
        raise RuntimeError(f"no running cluster in {pgdata}")
    handles = []
    for pid in pids:
        try:
            handles.append(os.pidfd_open(pid))
        except ProcessLookupError:
            continue
    try:
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        for handle in handles:
            # A pidfd becomes readable when its process exits, reaped or not.
            ready, _, _ = select.select([handle], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError(f"cluster process did not exit after SIGKILL ({pgdata})")
    finally:
        for handle in handles:
            os.close(handle)
    return pids[0]


_RESET = """
TRUNCATE recordings, renditions, consent_proofs, recording_keys, holds, consent_withdrawals, access_requests,
    disposals, lifecycle_outbox, audit_log, tenant_sources, tenant_retention_options, login_failures, nodes,
    object_deletions;
DELETE FROM recording_policies WHERE NOT (tenant_id IS NULL AND version = 1);
UPDATE recording_policies SET superseded_at = NULL;
DELETE FROM retention_classes WHERE tenant_id IS NOT NULL;
DELETE FROM tenant_numbers;
DELETE FROM tenants;
"""


async def reset_catalogue(db: asyncpg.Pool | asyncpg.Connection) -> None:
    """Back to a freshly migrated catalogue: no recordings, tenants or audit entries; the shipped retention
    presets and the install's system policy (version 1) kept."""
    await db.execute(_RESET)
