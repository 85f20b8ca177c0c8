"""The recording policy at call setup, end to end: a real server, SIPp as the SRC, the CLI as the operator.

A fresh install records under the seed default (legitimate interest, 60 days) and hands the PBX the
recording's reference in ``X-Recording-Ref``; once the operator makes the system policy "not recorded", a call
is still answered 200 OK but with every stream inactive, and no catalogue row or byte is written.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.peers.sipp_runner import run_siprec_call
from tests.pg import scratch_dir

from .server import ServerProcess, running_server


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    """A server of its own: this module changes the system policy."""
    with scratch_dir() as data_dir, running_server(data_dir) as process:
        yield process


def _recorded(server: ServerProcess, call_id: str) -> dict[str, object]:
    return server.wait_for_recording(lambda row: row["call_id"] == call_id and row["status"] != "recording")


def test_a_fresh_install_records_under_the_default_policy(server: ServerProcess, tmp_path: Path) -> None:
    call = run_siprec_call(f"127.0.0.1:{server.sip_port}", workdir=tmp_path, duration=2.0)
    assert call.sipp.ok, call.sipp.output
    (_, ok), *_ = call.sipp.exchanges("INVITE")
    assert ok is not None and ok.status == 200
    row = _recorded(server, call.sipp.call_id)
    assert ok.header("X-Recording-Ref") == row["reference"]
    assert (row["basis"], row["purpose"], row["retention_class"]) == (
        "legitimate_interest",
        "quality assurance",
        "quality_60d",
    )
    started = datetime.fromisoformat(str(row["started_at"]))
    assert datetime.fromisoformat(str(row["expires_at"])) == started + timedelta(days=60)
    assert row["status"] == "complete"


def test_no_basis_means_inactive_streams_and_nothing_stored(server: ServerProcess, tmp_path: Path) -> None:
    server.cli("policies", "set", "--system", "--not-recorded", "--as", "dpo@example.hu")
    before = {row["call_id"] for row in server.recordings()}
    files_before = sorted(p for p in (server.data_dir / "recordings").rglob("*") if p.is_file())
    deadline = time.monotonic() + 10
    # The server reloads its policies on the change's NOTIFY; the first call after it must not be recorded.
    while True:
        call = run_siprec_call(f"127.0.0.1:{server.sip_port}", workdir=tmp_path, duration=1.0)
        assert call.sipp.ok, call.sipp.output
        if server.metric("hangtar_calls_not_recorded_total", reason="policy") >= 1:
            break
        assert time.monotonic() < deadline, "the policy change never reached the server"
        before.add(call.sipp.call_id)  # recorded under the old policy: not what this test is about
    (_, ok), *_ = call.sipp.exchanges("INVITE")
    assert ok is not None and ok.status == 200
    assert ok.header("X-Recording-Ref") is None
    assert call.answer is not None and set(call.answer.ports) == {9}
    assert "a=inactive" in ok.body and "a=recvonly" not in ok.body
    time.sleep(1.0)  # a row would have been written at the INVITE; give a wrong server time to show it
    assert {row["call_id"] for row in server.recordings()} == before
    assert sorted(p for p in (server.data_dir / "recordings").rglob("*") if p.is_file()) == files_before
    assert "not recorded (policy" in server.log()
