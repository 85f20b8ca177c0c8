"""End to end: a SIPREC client forks a call to the real server; the exported recording is checked by ear (FFT).

pjsua2 and SIPp are independent SIPREC clients; the recording is found and exported through the CLI, the way an
operator does it, and compared with what the client sent.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from storage.sealed import sealed_size
from tests.audio import peak_frequency, read_audio, silent_spans
from tests.peers.rtp_sender import Impairments
from tests.peers.sipp_runner import run_siprec_call

from .server import REPO, ServerProcess

PJSUA_SRC = REPO / "tests" / "peers" / "pjsua_src.py"
PACKET = 0.02


def start_pjsua(server: ServerProcess, tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], Path]:
    """The pjsua2 SRC as a subprocess (a pjsua2 abort cannot take pytest down); its JSON report's path."""
    report = tmp_path / "pjsua.json"
    target = f"sip:srs@127.0.0.1:{server.sip_port}"
    process = subprocess.Popen(
        [sys.executable, str(PJSUA_SRC), "--target", target, "--json-out", str(report), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, report


def run_pjsua(server: ServerProcess, tmp_path: Path, *args: str) -> dict[str, Any]:
    process, report_file = start_pjsua(server, tmp_path, *args)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, f"pjsua2 SRC failed:\n{stdout}\n{stderr}\n{server.log()}"
    report: dict[str, Any] = json.loads(report_file.read_text())
    return report


def finished(call_id: str) -> Any:
    return lambda row: row["call_id"] == call_id and row["status"] != "recording"


def sipp_call_id(message: str) -> str:
    for line in message.splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() in ("call-id", "i"):
            return value.strip()
    raise AssertionError(f"no Call-ID in {message!r}")


def export(server: ServerProcess, reference: str, target: Path) -> Path:
    server.cli("recordings", "export", reference, "-o", str(target))
    return target


def media_span(row: dict[str, Any]) -> float:
    """First packet of any stream to the end of the last packet of any stream, from the catalogue's timestamps."""
    firsts = [datetime.fromisoformat(s["first_packet_at"]) for s in row["streams"] if s["first_packet_at"]]
    lasts = [datetime.fromisoformat(s["last_packet_at"]) for s in row["streams"] if s["last_packet_at"]]
    return (max(lasts) - min(firsts)).total_seconds() + PACKET


def test_pjsua2_call_is_recorded_in_stereo_caller_left(server: ServerProcess, tmp_path: Path) -> None:
    report = run_pjsua(server, tmp_path, "--duration", "5", "--caller-tone", "440", "--callee-tone", "1000")
    assert report["status"] == 200
    assert all(stream["sent"] for stream in report["streams"])

    row = server.wait_for_recording(finished(report["call_id"]))
    assert row["status"] == "complete", row
    assert row["channels"] == 2 and row["sample_rate"] == 8000 and row["format"] == "flac"
    roles = {p["aor"]: p["role"] for p in row["participants"]}
    assert roles == {"sip:+3612345678@pbx.example.hu": "caller", "sip:+3619876543@pbx.example.hu": "callee"}
    assert [s["label"] for s in row["streams"]] == ["1", "2"]
    for stream in row["streams"]:
        assert stream["codec"] == "PCMU"
        assert stream["packets"] >= 240, stream  # 5 s of 20 ms packets
        assert stream["lost"] == 0 and stream["late"] == 0

    audio = read_audio(export(server, row["reference"], tmp_path / "call.flac"))
    left, right = audio.channel(0), audio.channel(1)
    left_peak, right_peak = peak_frequency(left, audio.sample_rate), peak_frequency(right, audio.sample_rate)
    print(f"pjsua2 call: left {left_peak:.1f} Hz, right {right_peak:.1f} Hz, {audio.duration:.3f} s")
    assert abs(left_peak - 440) < 5
    assert abs(right_peak - 1000) < 5
    assert abs(audio.duration - report["duration"]) < 0.1, (audio.duration, report["duration"])
    assert abs(audio.duration - media_span(row)) < 0.04, (audio.duration, media_span(row))
    assert abs(audio.duration - row["duration_seconds"]) < 0.001

    shown = json.loads(server.cli("recordings", "show", row["reference"], "--json").stdout)
    assert shown["id"] == row["id"]
    assert "urn:ietf:params:xml:ns:recording:1" in shown["raw_metadata"]
    # Stored encrypted: the SHA-256 is the exported audio's, the size the sealed file's (tests/integration/
    # test_encryption.py checks the rest).
    exported = tmp_path / "call.flac"
    assert shown["sha256"] == hashlib.sha256(exported.read_bytes()).hexdigest()
    assert shown["encrypted"] is True and shown["size_bytes"] == sealed_size(exported.stat().st_size)


def test_sipp_call_with_second_stream_from_a_helper_sender(server: ServerProcess, tmp_path: Path) -> None:
    call = run_siprec_call(f"127.0.0.1:{server.sip_port}", workdir=tmp_path, duration=4.0)
    assert call.sipp.ok, call.sipp.describe()
    assert call.stream2 is not None
    call_id = sipp_call_id(call.sipp.received(status=200, cseq="INVITE")[0].text)
    row = server.wait_for_recording(finished(call_id))
    assert row["status"] == "complete", row
    audio = read_audio(export(server, row["reference"], tmp_path / "sipp.flac"))
    assert abs(peak_frequency(audio.channel(0), audio.sample_rate) - 440) < 5
    assert abs(peak_frequency(audio.channel(1), audio.sample_rate) - 1000) < 5
    assert abs(audio.duration - media_span(row)) < 0.04


def test_loss_and_reordering_leave_silent_gaps_and_the_right_length(
    server: ServerProcess, tmp_path: Path
) -> None:
    impairments = Impairments(drop=0.05, swap_pairs=10, delay_count=5, delay_by=3, seed=7)
    call = run_siprec_call(
        f"127.0.0.1:{server.sip_port}", workdir=tmp_path, duration=5.0, impairments=impairments
    )
    assert call.sipp.ok, call.sipp.describe()
    assert call.stream2 is not None
    sent = call.stream2
    dropped = len(sent.dropped_seqs)
    assert dropped >= 5
    call_id = sipp_call_id(call.sipp.received(status=200, cseq="INVITE")[0].text)
    row = server.wait_for_recording(finished(call_id))
    assert row["status"] == "complete", row
    impaired = row["streams"][1]
    assert impaired["lost"] == dropped, (impaired, dropped)
    assert impaired["late"] == 0  # reordering stayed inside the reorder window
    assert impaired["packets"] == sent.unique_packets_sent
    # Quality in the catalogue: the loss fraction, the silence filled for it, the reordering it absorbed.
    assert impaired["loss_fraction"] == pytest.approx(
        dropped / (sent.unique_packets_sent + dropped), abs=1e-4
    )
    assert impaired["gap_seconds"] == pytest.approx(dropped * PACKET, abs=0.001)
    assert impaired["reordered"] >= 10  # ten swapped pairs, five packets held back by three
    assert row["streams"][0]["loss_fraction"] == 0.0 and row["streams"][0]["gap_seconds"] == 0.0
    assert 0.0 < impaired["jitter_ms"] < 50.0

    audio = read_audio(export(server, row["reference"], tmp_path / "lossy.flac"))
    assert abs(audio.duration - media_span(row)) < 0.04
    right = audio.channel(1)
    gaps = silent_spans(right, audio.sample_rate, min_duration=0.015)
    # Each dropped packet is 20 ms of silence (adjacent drops merge); nothing else is silent.
    origin = min(datetime.fromisoformat(st["first_packet_at"]) for st in row["streams"])
    begin = (datetime.fromisoformat(impaired["first_packet_at"]) - origin).total_seconds()
    end = (datetime.fromisoformat(impaired["last_packet_at"]) - origin).total_seconds()
    gap_time = sum(g.duration for g in gaps if g.start > begin + 0.01 and g.end < end)
    assert abs(gap_time - dropped * PACKET) < 0.002 * dropped + 0.005, (gap_time, dropped, gaps)
    assert abs(peak_frequency(right, audio.sample_rate) - 1000) < 5
    assert np.count_nonzero(audio.channel(0)) > 0.9 * audio.frames


def test_g722_call_is_recorded_wideband(server: ServerProcess, tmp_path: Path) -> None:
    # The SRC prefers G.722: the answer takes it, the recording is 16 kHz, tones land where they belong.
    report = run_pjsua(
        server,
        tmp_path,
        "--duration",
        "3",
        "--codecs",
        "G722,PCMU",
        "--caller-tone",
        "440",
        "--callee-tone",
        "3000",
    )
    assert report["status"] == 200
    assert "G722/8000" in report["answer_sdp"] and "PCMU" not in report["answer_sdp"]
    row = server.wait_for_recording(finished(report["call_id"]))
    assert row["status"] == "complete", row
    assert row["sample_rate"] == 16000 and [s["codec"] for s in row["streams"]] == ["G722", "G722"]
    audio = read_audio(export(server, row["reference"], tmp_path / "wideband.flac"))
    assert audio.sample_rate == 16000 and audio.channels == 2
    assert abs(peak_frequency(audio.channel(0), audio.sample_rate) - 440) < 5
    # The 3 kHz tone came through G.722's upper and lower sub-bands and the 16 kHz file intact.
    assert abs(peak_frequency(audio.channel(1), audio.sample_rate) - 3000) < 10
    assert abs(audio.duration - media_span(row)) < 0.04
