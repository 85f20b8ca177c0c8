from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from storage import EmbeddedDatabase
from tests.pg import cluster_processes, kill_cluster, scratch_dir

from .server import ServerProcess, running_server


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    """One real server process (and its embedded PostgreSQL) shared by a test module.

    The data dir lives outside pytest's 0700 temp tree: the embedded cluster runs as its own system user."""
    with scratch_dir() as data_dir, running_server(data_dir, "--log-level", "DEBUG") as process:
        yield process


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A private data dir; a cluster left running in it (a crashed server's orphan) is stopped afterwards."""
    with scratch_dir() as path:
        try:
            yield path
        finally:
            pgdata = EmbeddedDatabase(path).pgdata
            if cluster_processes(pgdata):
                kill_cluster(pgdata)
