"""Nodes on one catalogue, as an operator runs them: ``hangtar nodes``, ``drain`` and ``resume`` through the
database to a running server, its OPTIONS answer while draining, and recovery of unfinished recordings by the
node that owns them (``hangtar recover --node`` for a dead one)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest

from storage import Catalogue, NewRecording, open_pool
from storage.nodes import NodeRegistry
from tests.pg import running_cluster

from .server import running_server
from .sip_probe import UdpProbe, header, request, status_of

pytestmark = pytest.mark.integration


def options_status(port: int) -> tuple[int, str | None]:
    probe = UdpProbe()
    try:
        probe.send(request("OPTIONS", port=port, local_port=probe.port), port)
        answer = probe.final_response()
        return status_of(answer), header(answer, "Retry-After")
    finally:
        probe.close()


async def _seed(data_dir: Path) -> dict[str, UUID]:
    """An unfinished recording of this node and one of a node that died an hour ago (no audio files)."""
    with running_cluster(data_dir) as cluster:
        pool = await open_pool(cluster.dsn, max_size=2)
        try:
            catalogue = Catalogue(pool)
            ids = {}
            for node, call_id in (("rec-a", "own@192.0.2.10"), ("rec-b", "dead@192.0.2.10")):
                row = await catalogue.create(
                    NewRecording(call_id=call_id, started_at=datetime.now(UTC), node=node)
                )
                ids[node] = row.id
            an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
            await NodeRegistry(pool, clock=lambda: an_hour_ago).register(
                "rec-b", version="1.0", sip_address="127.0.0.1:5070"
            )
            return ids
        finally:
            await pool.close()


def status_of_recording(rows: list[dict[str, object]], recording_id: UUID) -> object:
    return next(r["status"] for r in rows if r["id"] == str(recording_id))


def test_drain_resume_and_recovery_by_node(data_dir: Path) -> None:
    with running_server(data_dir, "--node-name", "rec-a") as server:
        nodes = json.loads(server.cli("nodes", "--json").stdout)
        assert [(n["name"], n["running"], n["draining"]) for n in nodes] == [("rec-a", True, False)]
        assert options_status(server.sip_port) == (200, None)

        drained = server.cli("drain", "--node", "rec-a")
        assert "rec-a: draining, 0 active" in drained.stdout
        status, retry_after = options_status(server.sip_port)
        assert status == 503 and retry_after is not None  # the dispatcher's probe marks this node down
        assert json.loads(server.http_get("/healthz")[1])["status"] == "draining"
        assert server.metric("hangtar_draining") == 1

        resumed = server.cli("drain", "--node", "rec-a", "--resume")
        assert "rec-a: accepting calls" in resumed.stdout
        assert options_status(server.sip_port) == (200, None)
        assert server.metric("hangtar_draining") == 0

        unknown = server.cli("drain", "--node", "rec-z", check=False)
        assert unknown.returncode == 3 and "rec-z" in unknown.stderr

        ids = asyncio.run(_seed(data_dir))
        server.stop()
        server.start("--node-name", "rec-a")  # a restart recovers its own recording, never rec-b's
        rows = server.recordings()
        assert status_of_recording(rows, ids["rec-a"]) == "interrupted"
        assert status_of_recording(rows, ids["rec-b"]) == "recording"

        refused = server.cli("recover", "--node", "rec-a", check=False)
        assert refused.returncode == 4 and "running" in refused.stderr

        recovered = server.cli("recover", "--node", "rec-b")
        assert "rec-b: 1 recording(s) finished as interrupted" in recovered.stdout
        assert status_of_recording(server.recordings(), ids["rec-b"]) == "interrupted"

    stopped = {n["name"]: n for n in json.loads(server.cli("nodes", "--json").stdout)}
    assert stopped["rec-a"]["stopped_at"] is not None and not stopped["rec-a"]["running"]
    assert not stopped["rec-b"]["running"]
