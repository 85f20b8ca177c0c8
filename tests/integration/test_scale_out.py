"""Two nodes behind Kamailio, as deploy/README.md sets them up: one PostgreSQL, one S3-compatible object store
(SeaweedFS), one key file, the shipped kamailio.cfg in front; each node records to its own disk. The load
generator's calls spread over both nodes and every one is verified from the object store; a drained node gets no
new call and no call fails; a node killed mid-call recovers its own recordings as interrupted when it restarts and
uploads them; two retention sweeps started at once delete each expired recording once, and its object after."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.peers.kamailio import running_kamailio
from tests.pg import PgCluster, running_cluster, scratch_dir
from tests.s3 import SeaweedFS

from .server import REPO, ServerProcess, free_port, rtp_range
from .sip_probe import UdpProbe, request, status_of

pytestmark = pytest.mark.integration

CALLS = 40
AUDIO_ON_DISK = 64 * 1024  # octets of a sealed recording file: about 3 s of two-tone stereo FLAC


@dataclass
class Site:
    root: Path
    db: PgCluster
    env: dict[str, str]
    nodes: dict[str, ServerProcess]
    kamailio: int
    store: SeaweedFS

    def objects(self) -> list[str]:
        """Every object in the bucket."""
        listed = self.store.client().list_objects_v2(Bucket=self.store.bucket)
        return [item["Key"] for item in listed.get("Contents", [])]

    def hangtar(self, node: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """The CLI on ``node``'s host: its data dir, the shared catalogue, keys and recordings."""
        where = ["--data-dir", str(self.nodes[node].data_dir), "--database-dsn", self.db.dsn]
        done = subprocess.run(
            [sys.executable, "-m", "siprec_server", *args, *where],
            cwd=REPO,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=180,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"hangtar {' '.join(args)} on {node} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def load(self, name: str, *args: str) -> subprocess.Popen[str]:
        """The load generator through Kamailio, its report under ``name``."""
        command = [sys.executable, "-m", "load_tests.capacity", "--target", f"127.0.0.1:{self.kamailio}"]
        command += ["--no-pin", "--rate", "10", "--out", str(self.root / name), *args]
        return subprocess.Popen(
            command,
            cwd=REPO,
            env={**os.environ, **self.env},  # the object store's settings, to read what it holds
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def verified_load(self, name: str, *args: str) -> str:
        process = self.load(
            name, "--dsn", self.db.dsn, "--key-file", self.env["HANGTAR_STORAGE_KEY_FILE"], *args
        )
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, f"load run {name} failed:\n{output[-6000:]}"
        return output

    def rows(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async def fetch() -> list[asyncpg.Record]:
            conn = await asyncpg.connect(self.db.dsn)
            try:
                return list(await conn.fetch(sql, *args))
            finally:
                await conn.close()

        return asyncio.run(fetch())

    def node_states(self) -> dict[str, dict[str, Any]]:
        return {n["name"]: n for n in json.loads(self.hangtar("n2", "nodes", "--json").stdout)}

    def per_node(self) -> dict[str, int]:
        return {
            r["node"]: r["n"] for r in self.rows("SELECT node, count(*) AS n FROM recordings GROUP BY node")
        }


@pytest.fixture
def site() -> Iterator[Site]:
    with (
        scratch_dir("hangtar-scale-") as root,
        running_cluster(root / "db") as db,
        SeaweedFS(root / "seaweedfs") as store,
    ):
        shared = root / "shared"
        env = {
            "HANGTAR_STORAGE_KEY_FILE": str(shared / "keys" / "keys.json"),
            "HANGTAR_S3_BUCKET": store.bucket,
            "HANGTAR_S3_ENDPOINT": store.endpoint_url,
            "HANGTAR_S3_ACCESS_KEY_ID": store.access_key_id,
            "HANGTAR_S3_SECRET_ACCESS_KEY": store.secret_access_key,
            "HANGTAR_S3_PATH_STYLE": "true",
            "HANGTAR_RETENTION_SWEEP_INTERVAL": "0",  # the test starts the sweeps itself
            "HANGTAR_DELIVERY_INTERVAL": "0",
            "HANGTAR_RECORDING_SHUTDOWN_GRACE": "5",
            "HANGTAR_NODE_HEARTBEAT": "1",
        }
        nodes: dict[str, ServerProcess] = {}
        try:
            for name in ("n1", "n2"):  # one after the other: n1 makes the key file, n2 reads it
                node = ServerProcess(
                    data_dir=root / name,
                    sip_port=free_port(),
                    http_port=free_port(),
                    rtp_ports=rtp_range(400),
                )
                node.start("--database-dsn", db.dsn, "--node-name", name, env=env)
                nodes[name] = node
            kamailio = free_port()
            with running_kamailio([(n, s.sip_port) for n, s in nodes.items()], kamailio, root / "kamailio"):
                yield Site(root=root, db=db, env=env, nodes=nodes, kamailio=kamailio, store=store)
        finally:
            for node in nodes.values():
                if node.process is not None and node.process.poll() is None:
                    node.stop()


def wait_until(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)
    return found


def dispatcher_answers(port: int) -> bool:
    probe = UdpProbe()
    try:
        probe.send(request("OPTIONS", port=port, local_port=probe.port), port)
        answer = probe.receive(timeout=2.0)
    finally:
        probe.close()
    return answer is not None and status_of(answer) == 200


def test_two_nodes_behind_kamailio(site: Site) -> None:
    wait_until("Kamailio to find a node", lambda: dispatcher_answers(site.kamailio))

    # 1. Forty verified calls, spread over both nodes (round robin).
    site.verified_load("spread", "--calls", str(CALLS), "--hold", "5")
    spread = site.per_node()
    assert sum(spread.values()) == CALLS and set(spread) == {"n1", "n2"}
    assert min(spread.values()) >= CALLS // 4, spread
    # Verified from the store: every recording is there, and no node keeps a copy.
    assert site.rows("SELECT count(*) AS n FROM recordings WHERE object_key IS NULL")[0]["n"] == 0
    assert len(site.objects()) == CALLS
    assert [p for node in site.nodes.values() for p in (node.data_dir / "recordings").rglob("*.sealed")] == []

    # 2. n1 drains: every new call lands on n2, and none fails (a 503 from n1 moves Kamailio to n2).
    assert "n1: draining" in site.hangtar("n2", "drain", "--node", "n1").stdout
    site.verified_load("drained", "--calls", "10", "--hold", "3")
    drained = site.per_node()
    assert drained == {"n1": spread["n1"], "n2": spread["n2"] + 10}, drained
    listed = wait_until("n1 listed as draining", lambda: site.node_states().get("n1", {}).get("draining"))
    assert listed is True and site.node_states()["n2"]["draining"] is False

    # 3. kill -9 of n2 mid-call (n1 still drained, so the calls are n2's): restarted, it recovers them.
    calls = site.load("killed", "--calls", "4", "--hold", "60")
    try:
        sql = "SELECT id, file_path FROM recordings WHERE node = 'n2' AND status = 'recording'"
        live = wait_until("four calls recording on n2", lambda: len(rows := site.rows(sql)) == 4 and rows, 60)
        # Kill once every file holds a few seconds of encrypted audio (past the start's wait for RTCP alignment).
        files = [Path(r["file_path"]) for r in live]
        wait_until(
            "audio on disk", lambda: all(f.exists() and f.stat().st_size > AUDIO_ON_DISK for f in files), 60
        )
        site.nodes["n2"].kill()
    finally:
        calls.kill()
        calls.communicate()
    site.nodes["n2"].start("--database-dsn", site.db.dsn, "--node-name", "n2", env=site.env)
    ids = [r["id"] for r in live]
    query = "SELECT status, duration_seconds, node, object_key FROM recordings WHERE id = ANY($1)"

    def uploaded() -> list[asyncpg.Record] | None:
        rows = site.rows(query, ids)
        return rows if all(r["status"] not in ("recording", "uploading") for r in rows) else None

    recovered = wait_until("the recovered recordings uploaded", uploaded)
    assert [(r["status"], r["node"]) for r in recovered] == [("interrupted", "n2")] * 4
    assert all(r["object_key"] for r in recovered), recovered
    assert all(r["duration_seconds"] and r["duration_seconds"] > 2 for r in recovered), recovered
    assert (
        site.rows("SELECT count(*) AS n FROM recordings WHERE status <> 'complete' AND node = 'n1'")[0]["n"]
        == 0
    )

    # 4. Both nodes sweep at once, as of the day after every recording's 60 days: each is deleted once.
    as_of = (datetime.now(UTC) + timedelta(days=61)).isoformat()
    sweep = ["retention", "sweep", "--as-of", as_of, "--batch", "5"]
    command = [sys.executable, "-m", "siprec_server", *sweep, "--database-dsn", site.db.dsn]
    sweeps = [
        subprocess.Popen(
            [*command, "--data-dir", str(node.data_dir)],
            cwd=REPO,
            env={**os.environ, **site.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for node in site.nodes.values()
    ]
    outputs = [process.communicate(timeout=180)[0] for process in sweeps]
    assert [process.returncode for process in sweeps] == [0, 0], outputs
    total = CALLS + 10 + 4
    disposed = site.rows("SELECT recording_id, count(*) AS n FROM disposals GROUP BY recording_id")
    assert len(disposed) == total and all(r["n"] == 1 for r in disposed), outputs
    assert site.rows("SELECT count(*) AS n FROM recordings")[0]["n"] == 0
    # Every recording was in the store (none left on a node's disk); each object goes after its key.
    left = [
        p for node in site.nodes.values() for p in (node.data_dir / "recordings").rglob("*") if p.is_file()
    ]
    assert left == []
    wait_until("every object deleted", lambda: site.objects() == [])
    assert site.rows("SELECT count(*) AS n FROM object_deletions")[0]["n"] == 0
