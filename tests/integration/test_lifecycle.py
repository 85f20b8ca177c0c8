"""Server lifecycle under real calls: lost ACK, graceful shutdown and crash mid-call, a one-way call."""

from __future__ import annotations

import itertools
import json
import re
import signal
import time
from pathlib import Path
from typing import Any

from tests.audio import peak_frequency, read_audio
from tests.peers.sipp_runner import SIPREC_UAC_NOACK, run_sipp, run_siprec_call, siprec_keys

from .server import ServerProcess, free_port, rtp_range
from .sip_probe import UdpProbe, request, status_of
from .test_recording_calls import sipp_call_id, start_pjsua


def wait_recording_active(server: ServerProcess, audio_seconds: float) -> dict[str, Any]:
    """Wait for a call in progress, then let ``audio_seconds`` of it be recorded."""
    row = server.wait_for_recording(lambda r: r["status"] == "recording", timeout=30)
    deadline = time.monotonic() + 30
    while server.metric("hangtar_rtp_packets_total") < 2 * 50 * audio_seconds:
        assert time.monotonic() < deadline, "RTP never arrived:\n" + server.log()
        time.sleep(0.1)
    return row


def options_status_within(server: ServerProcess, wanted: int, timeout: float) -> bool:
    """Probe with OPTIONS, as an SBC's keep-alive does, until the server answers ``wanted``."""
    probe = UdpProbe()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            probe.send(request("OPTIONS", port=server.sip_port, local_port=probe.port), server.sip_port)
            if status_of(probe.final_response()) == wanted:
                return True
        return False
    finally:
        probe.close()


def test_lost_ack_makes_the_server_retransmit_its_200(server: ServerProcess, tmp_path: Path) -> None:
    # The client withholds its ACK for 3.8 s: RFC 3261 §13.3.1.4 / RFC 6026 — the 2xx goes again at T1, 2T1, 4T1.
    result = run_sipp(
        SIPREC_UAC_NOACK,
        f"127.0.0.1:{server.sip_port}",
        workdir=tmp_path,
        duration=1.0,
        keys=siprec_keys(),
        sets={"ack_delay_ms": "3800"},
    )
    assert result.ok, result.describe()
    answers = result.received(status=200, cseq="INVITE")
    times = [m.at - answers[0].at for m in answers]
    print("200 OK received at", [f"{t:.2f}" for t in times])
    assert len(answers) == 4, times
    assert [round(b - a, 1) for a, b in itertools.pairwise(times)] == [0.5, 1.0, 2.0]
    # After the late ACK the dialog is healthy: the BYE was answered and the recording finalised.
    assert result.received(status=200, cseq="BYE")
    call_id = sipp_call_id(answers[0].text)
    row = server.wait_for_recording(lambda r: r["call_id"] == call_id and r["status"] != "recording")
    # This client sends no RTP at all: the recording says so instead of pretending to be complete.
    assert row["status"] == "no_media"
    assert [s["packets"] for s in row["streams"]] == [0, 0]


def test_sigterm_mid_call_finalises_the_recording(data_dir: Path, tmp_path: Path) -> None:
    server = ServerProcess(
        data_dir=data_dir, sip_port=free_port(), http_port=free_port(), rtp_ports=rtp_range()
    )
    server.start(env={"HANGTAR_RECORDING_SHUTDOWN_GRACE": "1"})
    pjsua, report_file = start_pjsua(server, tmp_path, "--duration", "30")
    try:
        row = wait_recording_active(server, audio_seconds=2)
        # Draining: new calls and OPTIONS probes are refused while the active call may still finish.
        stopped_at = time.monotonic()
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        assert options_status_within(server, 503, timeout=5.0)
        assert server.stop(timeout=60) == 0, server.log()
        shutdown_took = time.monotonic() - stopped_at
        pjsua.wait(30)
    finally:
        if pjsua.poll() is None:
            pjsua.kill()
        pjsua.communicate()
    report = json.loads(report_file.read_text())
    assert report["remote_hangup"], report  # the server ended the call with BYE
    assert report["bye_status"] == 0 or report["ended_with"], report
    assert shutdown_took < 10, shutdown_took

    shown = json.loads(server.cli("recordings", "show", row["reference"], "--json").stdout)
    assert shown["status"] == "complete", shown
    out = tmp_path / "term.flac"
    server.cli("recordings", "export", row["reference"], "-o", str(out))
    audio = read_audio(out)
    assert audio.duration >= 2.0
    assert abs(audio.duration - shown["duration_seconds"]) < 0.001
    assert abs(peak_frequency(audio.channel(0), audio.sample_rate) - 440) < 5


def test_crash_mid_call_keeps_the_audio_written_so_far(data_dir: Path, tmp_path: Path) -> None:
    server = ServerProcess(
        data_dir=data_dir, sip_port=free_port(), http_port=free_port(), rtp_ports=rtp_range()
    )
    server.start()
    pjsua, _ = start_pjsua(server, tmp_path, "--duration", "14")
    try:
        row = wait_recording_active(server, audio_seconds=8)
        server.kill()  # SIGKILL: no chance to finalise anything
    finally:
        pjsua.wait(60)
        pjsua.communicate()
    server.start()  # the restart recovers what the dead process left behind
    try:
        shown = json.loads(server.cli("recordings", "show", row["reference"], "--json").stdout)
        assert shown["status"] == "interrupted", shown
        out = tmp_path / "crash.flac"
        server.cli("recordings", "export", row["reference"], "-o", str(out))
        audio = read_audio(out)
        # At most a few seconds lost (the issue allows 10): past the first recording.sync_wait seconds
        # (4 s), audio reaches the file once a second behind the 0.3 s reorder window, so a crash costs up
        # to ~1.5 s of what had arrived.
        print(f"after a crash at >= 8 s of media the file holds {audio.duration:.2f} s")
        assert audio.duration >= 8.0 - 2.0, audio.duration
        assert abs(peak_frequency(audio.channel(1), audio.sample_rate) - 1000) < 5
        assert (
            shown["duration_seconds"] is not None and abs(shown["duration_seconds"] - audio.duration) < 0.05
        )
    finally:
        assert server.stop() == 0


def test_a_one_way_call_is_reported_while_it_runs_and_in_the_catalogue(
    data_dir: Path, tmp_path: Path
) -> None:
    server = ServerProcess(
        data_dir=data_dir, sip_port=free_port(), http_port=free_port(), rtp_ports=rtp_range()
    )
    server.start(env={"HANGTAR_RECORDING_NO_MEDIA_TIMEOUT": "1.5"})
    try:
        call = run_siprec_call(
            f"127.0.0.1:{server.sip_port}", workdir=tmp_path, duration=4.0, send_stream2=False
        )
        assert call.sipp.ok, call.sipp.describe()
        call_id = sipp_call_id(call.sipp.received(status=200, cseq="INVITE")[0].text)
        row = server.wait_for_recording(lambda r: r["call_id"] == call_id and r["status"] != "recording")
        assert row["status"] == "one_way", row
        assert [s["packets"] > 0 for s in row["streams"]] == [True, False]
        # Loud while the call ran: a warning naming the silent stream, and the metric.
        assert re.search(
            rf"call {re.escape(call_id)}: recording {row['reference']} is one-way: stream\(s\) \[1\]",
            server.log(),
        )
        assert server.metric("hangtar_calls_one_way_total") == 1
        assert server.metric("hangtar_calls_without_media_total") == 0
    finally:
        assert server.stop() == 0
