"""A pjsua2 SRC re-INVITE that changes the participants mid-call: a blind transfer on the recorded call.

The SRC starts the recording with caller and callee (RFC 7865 metadata, `complete`); three seconds in, the
callee transfers the call and a new party takes over the callee's stream (label 2). The SRC re-INVITEs with its
usual SDP offer and a complete metadata snapshot naming the new party as sender of that stream and the old one
as disassociated (RFC 7865 `disassociate-time`). The recording must go on undisturbed in the same file and
ports, and the catalogue must show who is on the call now, keeping the first document and the update.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.audio import peak_frequency, read_audio, silent_spans
from tests.peers.siprec_offer import CALLEE_AOR, CALLER_AOR, b64_id

from .server import ServerProcess
from .test_recording_calls import export, finished, media_span, run_pjsua

NEW_CALLEE_AOR = "sip:+3617654321@pbx.example.hu"
START = "2025-03-14T09:26:53Z"
TRANSFER = "2025-03-14T09:26:56Z"
DURATION = 6.0
REINVITE_AFTER = 3.0


def _participant(pid: str, aor: str, name: str) -> str:
    return f"""  <participant participant_id="{pid}">
    <nameID aor="{aor}">
      <name xml:lang="hu">{name}</name>
    </nameID>
  </participant>
"""


def _assoc(pid: str, send: str, recv: str) -> str:
    return f"""  <participantstreamassoc participant_id="{pid}">
    <send>{send}</send>
    <recv>{recv}</recv>
  </participantstreamassoc>
"""


def transfer_metadata() -> tuple[str, str]:
    """Two complete RFC 7865 snapshots of one session: before the transfer (caller and callee), and after it,
    where the new callee sends stream label 2 and the old callee left the session at the transfer."""
    group, session = b64_id(), b64_id()
    caller, callee, new_callee = b64_id(), b64_id(), b64_id()
    s_caller, s_callee = b64_id(), b64_id()
    head = f"""<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="urn:ietf:params:xml:ns:recording:1">
  <datamode>complete</datamode>
  <group group_id="{group}">
    <associate-time>{START}</associate-time>
  </group>
  <session session_id="{session}">
    <sipSessionID>a1b2c3d4e5f60718293a4b5c6d7e8f90;remote=0f1e2d3c4b5a69788796a5b4c3d2e1f0</sipSessionID>
    <group-ref>{group}</group-ref>
    <start-time>{START}</start-time>
  </session>
"""
    streams = f"""  <stream stream_id="{s_caller}" session_id="{session}">
    <label>1</label>
  </stream>
  <stream stream_id="{s_callee}" session_id="{session}">
    <label>2</label>
  </stream>
  <sessionrecordingassoc session_id="{session}">
    <associate-time>{START}</associate-time>
  </sessionrecordingassoc>
"""
    caller_part = _participant(caller, CALLER_AOR, "Kovács Éva")
    callee_part = _participant(callee, CALLEE_AOR, "Szabó Ádám")
    joined = f"""  <participantsessionassoc participant_id="{caller}" session_id="{session}">
    <associate-time>{START}</associate-time>
  </participantsessionassoc>
"""
    before = (
        head
        + caller_part
        + callee_part
        + streams
        + joined
        + f"""  <participantsessionassoc participant_id="{callee}" session_id="{session}">
    <associate-time>{START}</associate-time>
  </participantsessionassoc>
"""
        + _assoc(caller, s_caller, s_callee)
        + _assoc(callee, s_callee, s_caller)
        + "</recording>\n"
    )
    after = (
        head
        + caller_part
        + callee_part
        + _participant(new_callee, NEW_CALLEE_AOR, "Tóth Anna")
        + streams
        + joined
        + f"""  <participantsessionassoc participant_id="{callee}" session_id="{session}">
    <associate-time>{START}</associate-time>
    <disassociate-time>{TRANSFER}</disassociate-time>
  </participantsessionassoc>
  <participantsessionassoc participant_id="{new_callee}" session_id="{session}">
    <associate-time>{TRANSFER}</associate-time>
  </participantsessionassoc>
"""
        + _assoc(caller, s_caller, s_callee)
        + _assoc(new_callee, s_callee, s_caller)
        + "</recording>\n"
    )
    # Unindented, as many SBCs send it: the re-INVITE must fit pjsip's 4000-byte message buffer.
    return _compact(before), _compact(after)


def _compact(xml: str) -> str:
    return re.sub(r">\s+<", "><", xml)


def media_lines(sdp: str) -> list[tuple[str, int, str | None, set[str]]]:
    """(media, port, label, direction attributes) per m-line."""
    lines: list[tuple[str, int, str | None, set[str]]] = []
    for block in re.split(r"\r?\n(?=m=)", sdp)[1:]:
        media, port = block.split()[0][2:], int(block.split()[1])
        label = re.search(r"^a=label:(\S+)", block, flags=re.MULTILINE)
        directions = set(
            re.findall(r"^a=(sendonly|recvonly|sendrecv|inactive)\s*$", block, flags=re.MULTILINE)
        )
        lines.append((media, port, label.group(1) if label else None, directions))
    return lines


def origin(sdp: str) -> tuple[str, int]:
    """The o= line without its version, and the version."""
    match = re.search(r"^o=(\S+) (\S+) (\d+) (.+?)\s*$", sdp, flags=re.MULTILINE)
    assert match, sdp
    return f"{match[1]} {match[2]} {match[4]}", int(match[3])


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferCall:
    report: dict[str, Any]  # the pjsua2 SRC's JSON report
    workdir: Path


@pytest.fixture(scope="module")
def transfer_call(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> TransferCall:
    """One recorded call, re-INVITEd with the transfer's metadata 3 s into its 6 s."""
    workdir = tmp_path_factory.mktemp("transfer")
    before, after = transfer_metadata()
    (workdir / "before.xml").write_text(before, encoding="utf-8")
    (workdir / "after.xml").write_text(after, encoding="utf-8")
    report = run_pjsua(
        server,
        workdir,
        "--duration",
        f"{DURATION:g}",
        "--caller-tone",
        "440",
        "--callee-tone",
        "1000",
        "--metadata",
        str(workdir / "before.xml"),
        "--reinvite-after",
        f"{REINVITE_AFTER:g}",
        "--reinvite-metadata",
        str(workdir / "after.xml"),
    )
    return TransferCall(report=report, workdir=workdir)


def test_the_reinvite_is_answered_with_full_sdp_on_the_same_ports(transfer_call: TransferCall) -> None:
    report = transfer_call.report
    assert report["status"] == 200 and report["outcome"] == "ok", report
    assert all(stream["sent"] for stream in report["streams"])

    # The re-INVITE carried the new snapshot next to a fresh offer with the same labels, both still sendonly.
    assert report["reinvite_status"] == 200, report
    assert abs(report["reinvite_at"] - REINVITE_AFTER) < 0.5
    assert "application/rs-metadata+xml" in report["reinvite"] and NEW_CALLEE_AOR in report["reinvite"]
    offered = media_lines(report["reinvite_offer_sdp"])
    assert [(m, label, d) for m, _, label, d in offered] == [
        ("audio", "1", {"sendonly"}),
        ("audio", "2", {"sendonly"}),
    ]
    # RFC 3264 §8: the answer to the re-offer is a full SDP keeping each m-line's port, labels echoed.
    first, second = media_lines(report["answer_sdp"]), media_lines(report["reinvite_answer_sdp"])
    assert second == first, (report["answer_sdp"], report["reinvite_answer_sdp"])
    assert [(label, d) for _, _, label, d in second] == [("1", {"recvonly"}), ("2", {"recvonly"})]
    assert all(port > 0 for _, port, _, _ in second)


def test_the_reanswer_keeps_the_origin_line(transfer_call: TransferCall) -> None:
    # RFC 3264 §8: a later SDP of the session keeps the o= line; only the version goes up, by one.
    report = transfer_call.report
    first_origin, second_origin = origin(report["answer_sdp"]), origin(report["reinvite_answer_sdp"])
    assert second_origin[0] == first_origin[0], (first_origin, second_origin)
    assert second_origin[1] == first_origin[1] + 1, (first_origin, second_origin)


def test_the_recording_runs_on_through_the_reinvite(
    server: ServerProcess, transfer_call: TransferCall
) -> None:
    report = transfer_call.report
    row = server.wait_for_recording(finished(report["call_id"]))
    assert row["status"] == "complete", row
    assert row["channels"] == 2 and row["format"] == "flac"
    assert [(s["label"], s["channel"]) for s in row["streams"]] == [("1", 0), ("2", 1)]
    for stream in row["streams"]:
        assert stream["packets"] >= (DURATION - 0.2) / 0.02, stream  # one stream each, through the re-INVITE
        assert stream["lost"] == 0, stream

    audio = read_audio(export(server, row["reference"], transfer_call.workdir / "transfer.flac"))
    assert audio.channels == 2
    assert abs(peak_frequency(audio.channel(0), audio.sample_rate) - 440) < 5
    assert abs(peak_frequency(audio.channel(1), audio.sample_rate) - 1000) < 5
    assert abs(audio.duration - report["duration"]) < 0.1, (audio.duration, report["duration"])
    assert abs(audio.duration - media_span(row)) < 0.04, (audio.duration, media_span(row))
    # No hole where the re-INVITE was: the tone runs on in both channels (the edges may hold a packet's silence).
    for index in (0, 1):
        gaps = silent_spans(audio.channel(index), audio.sample_rate, min_duration=0.02)
        inner = [g for g in gaps if g.start > 0.1 and g.end < audio.duration - 0.1]
        assert inner == [], (index, inner)


def test_the_catalogue_shows_the_new_callee_and_keeps_both_documents(
    server: ServerProcess, transfer_call: TransferCall
) -> None:
    row = server.wait_for_recording(finished(transfer_call.report["call_id"]))
    shown = json.loads(server.cli("recordings", "show", row["reference"], "--json").stdout)
    roles = {p["aor"]: p["role"] for p in shown["participants"]}
    expected = {CALLER_AOR: "caller", NEW_CALLEE_AOR: "callee", CALLEE_AOR: "other"}
    assert roles == expected, shown["participants"]
    names = {p["aor"]: p["name"] for p in shown["participants"]}
    assert names[NEW_CALLEE_AOR] == "Tóth Anna"
    # The first document stays the recording's metadata; the transfer's snapshot is its one later entry.
    assert NEW_CALLEE_AOR not in shown["raw_metadata"] and CALLEE_AOR in shown["raw_metadata"]
    history = shown["metadata_history"]
    assert len(history) == 1, history
    assert NEW_CALLEE_AOR in history[0]["xml"] and "<disassociate-time>" in history[0]["xml"]
