"""Operator commands that reach the server holding a call: the RFC 7866 §9.2 metadata snapshot request."""

from __future__ import annotations

from pathlib import Path

from .server import ServerProcess
from .test_lifecycle import wait_recording_active
from .test_recording_calls import start_pjsua


def test_snapshot_request_reaches_the_src_of_a_call_in_progress(server: ServerProcess, tmp_path: Path) -> None:
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
