"""Sessions seen from the operator's side: snapshot requests to a live call, duplicate forks linked."""

from __future__ import annotations

import re
from pathlib import Path

from tests.peers.siprec_offer import build_metadata

from .server import ServerProcess
from .test_lifecycle import wait_recording_active
from .test_recording_calls import finished, run_pjsua, start_pjsua


def test_snapshot_request_reaches_the_src_of_a_call_in_progress(
    server: ServerProcess, tmp_path: Path
) -> None:
    sip_log = tmp_path / "pjsua-sip.log"
    pjsua, _ = start_pjsua(server, tmp_path, "--duration", "6", "--log-file", str(sip_log))
    try:
        row = wait_recording_active(server, audio_seconds=1)
        result = server.cli("recordings", "snapshot", row["reference"], check=False)
    finally:
        pjsua.communicate(timeout=60)
    # pjsua2 is an SRC without snapshot support: it reads any UPDATE body as SDP and refuses it. The operator
    # is told exactly that, and the recording goes on undisturbed.
    assert result.returncode == 1, result.stderr + server.log()
    assert result.stdout.strip() == f"{row['reference']}: the recording client answered 488"
    log = sip_log.read_text(errors="replace")
    assert "UPDATE sip:" in log and "Content-Type: application/rs-metadata-request" in log
    finished = server.wait_for_recording(lambda r: r["id"] == row["id"] and r["status"] != "recording")
    assert finished["status"] == "complete"

    again = server.cli("recordings", "snapshot", row["reference"], check=False)
    assert again.returncode == 1 and "is not in progress (complete)" in again.stderr
    missing = server.cli("recordings", "snapshot", "HT-0000-0000", check=False)
    assert missing.returncode == 3


def test_the_same_session_forked_twice_is_linked_not_doubled(server: ServerProcess, tmp_path: Path) -> None:
    # One communication session (same RFC 7865 session id) reaching us twice: a retried fork.
    metadata = tmp_path / "metadata.xml"
    metadata.write_text(build_metadata(("1", "2")), encoding="utf-8")
    session_id = re.search(r'session session_id="([^"]+)"', metadata.read_text())
    assert session_id is not None
    before = server.metric("hangtar_duplicate_recordings_total")
    reports = [
        run_pjsua(server, tmp_path, "--duration", "1.5", "--metadata", str(metadata)) for _ in range(2)
    ]
    rows = [server.wait_for_recording(finished(r["call_id"])) for r in reports]
    assert [row["session_ids"] for row in rows] == [[session_id.group(1)]] * 2
    assert rows[0]["duplicate_of"] is None
    assert rows[1]["duplicate_of"] == rows[0]["id"]
    assert rows[1]["conversation_id"] == rows[0]["conversation_id"] == rows[0]["id"]
    assert all(row["status"] == "complete" for row in rows)  # both are kept: linking never drops audio
    assert server.metric("hangtar_duplicate_recordings_total") == before + 1
