"""SIPREC interop (issue 3) end to end: each SRC dialect and mid-call case as a real SIPp call to the real server.

Every test drives one scenario from ``tests/peers/sipp/`` (through ``tests/peers/interop_calls.py``), checks
what the server answered on the wire, then finds the recording through the CLI the way an operator does and
checks what a user relies on: status, layout, participants, pauses, and the audio itself (length, and an FFT of
each channel against the tone its sender played). The last test floods the server while five calls record.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.audio import Audio, peak_frequency, read_audio, silent_spans
from tests.peers import interop_calls
from tests.peers.sipp_runner import SiprecCallResult, run_siprec_call
from tests.peers.sipp_trace import SdpMedia, TraceMessage
from tests.peers.siprec_offer import CALLEE_AOR, CALLER_AOR
from tests.pg import scratch_dir

from .server import REPO, ServerProcess, free_port, rtp_range
from .sip_probe import UdpProbe, request, status_of

pytestmark = pytest.mark.integration

FLOOD = REPO / "tests" / "peers" / "flood.py"
PACKET = 0.02
LENGTH_TOLERANCE = 0.15  # recording length vs. call length: SIPp's pauses and the BYE's timing
TONE_TOLERANCE = 5.0  # Hz
RSS_CEILING_KB = 400 * 1024


@pytest.fixture(scope="module")
def srs() -> Iterator[ServerProcess]:
    """The real server; a wide RTP range, as the flood's hostile INVITEs are recording sessions too."""
    with scratch_dir() as data_dir:
        server = ServerProcess(
            data_dir=data_dir, sip_port=free_port(), http_port=free_port(), rtp_ports=rtp_range(1000)
        )
        server.start("--log-level", "DEBUG")
        try:
            yield server
        finally:
            if server.process is not None and server.process.poll() is None:
                server.stop()


# -- helpers --------------------------------------------------------------------------------------------


def target(server: ServerProcess) -> str:
    return f"127.0.0.1:{server.sip_port}"


def rows_of(server: ServerProcess, call_id: str) -> list[dict[str, Any]]:
    listing = server.cli("recordings", "list", "--json", "--limit", "1000").stdout
    return [row for row in json.loads(listing) if row["call_id"] == call_id]


def finished_row(server: ServerProcess, call_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """The catalogue row of the call once finalised (polling the CLI, as an operator would)."""
    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = rows_of(server, call_id)
        if rows and all(row["status"] != "recording" for row in rows):
            return rows[0]
        time.sleep(0.3)
    raise AssertionError(f"call {call_id} not finalised within {timeout} s: {rows}\n{server.log()[-4000:]}")


def shown(server: ServerProcess, reference: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(server.cli("recordings", "show", reference, "--json").stdout)
    return data


def exported(server: ServerProcess, row: dict[str, Any], directory: Path) -> Audio:
    path = directory / f"{row['reference']}.flac"
    server.cli("recordings", "export", row["reference"], "-o", str(path))
    return read_audio(path)


def answer_sdp(response: TraceMessage | None) -> list[SdpMedia]:
    """The SDP of a 200 OK, which must be one application/sdp body (GUIDE §2.3), never multipart."""
    assert response is not None, "no final response"
    assert response.status == 200, response.text
    assert response.content_type == "application/sdp", response.text
    return response.sdp


def at(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def audio_origin(row: dict[str, Any]) -> float:
    """Wall-clock time of the recording's first sample: the first packet of any stream."""
    return min(at(s["first_packet_at"]) for s in row["streams"] if s["first_packet_at"])


def assert_tone(channel: Any, rate: int, frequency: float, what: str) -> None:
    peak = peak_frequency(channel, rate)
    assert abs(peak - frequency) < TONE_TOLERANCE, f"{what}: peak {peak:.1f} Hz, expected {frequency} Hz"


def inner_gaps(audio: Audio, channel: int, min_duration: float = 0.015) -> list[Any]:
    """Silent spans inside a channel, ignoring the edges (where a stream may start or end a packet later)."""
    spans = silent_spans(audio.channel(channel), audio.sample_rate, min_duration=min_duration)
    return [s for s in spans if s.start > 0.1 and s.end < audio.duration - 0.1]


def numbers(row: dict[str, Any]) -> set[str]:
    return {p["aor"] for p in row["participants"] if p["aor"]}


# -- 1. Avaya SBCE: placeholder participant, then a metadata-only UPDATE --------------------------------


def test_avaya_style_metadata_only_update(srs: ServerProcess, tmp_path: Path) -> None:
    before, after = 1.5, 1.5
    call = interop_calls.avaya_update_call(
        target(srs), workdir=tmp_path, before_update=before, after_update=after
    )
    assert call.sipp.ok, call.sipp.describe()
    # The scenario: an UPDATE whose only body is the metadata, naming the real parties.
    [(update, update_answer)] = call.sipp.exchanges("UPDATE")
    assert update.content_type == "application/rs-metadata+xml"
    assert "m=audio" not in update.body and CALLER_AOR in update.body and CALLEE_AOR in update.body
    [(invite, _)] = call.sipp.exchanges("INVITE")
    assert interop_calls.DUMMY_AOR in invite.body and CALLER_AOR not in invite.body

    # RFC 3311 §5.2 / RFC 7866 §9: no offer in the UPDATE, so no answer: 200 without a body.
    assert update_answer is not None and update_answer.status == 200, update_answer
    assert update_answer.content_type is None and update_answer.body.strip() == "", update_answer.text
    assert (update_answer.header("Content-Length", "l") or "0") == "0"

    row = finished_row(srs, call.call_id)
    assert row["status"] == "complete", row
    assert row["channels"] == 2
    audio = exported(srs, row, tmp_path)
    assert abs(audio.duration - (before + after)) < LENGTH_TOLERANCE, audio.duration
    assert_tone(audio.channel(0), audio.sample_rate, 440.0, "left (caller)")
    assert_tone(audio.channel(1), audio.sample_rate, 1000.0, "right (callee)")
    assert not inner_gaps(audio, 0) and not inner_gaps(audio, 1)  # the UPDATE did not disturb the media

    detail = shown(srs, row["reference"])
    assert interop_calls.DUMMY_AOR in detail["raw_metadata"]  # the INVITE's document, kept as received
    assert [CALLER_AOR in s["xml"] for s in detail["metadata_history"]] == [True]
    # What the user sees: the real participants, the placeholder gone.
    roles = {p["aor"]: p["role"] for p in row["participants"]}
    assert roles == {CALLER_AOR: "caller", CALLEE_AOR: "callee"}, row["participants"]


# -- 2. BroadWorks: siprec namespace, metadata first, ;src, mixed m-line, c=0.0.0.0 hold ----------------


@pytest.mark.parametrize(
    ("talk", "hold", "after"),
    # The second: a 2-minute call with a 30-second hold (issue acceptance case), the first its quick twin.
    [(1.5, 2.0, 1.5), (45.0, 30.0, 45.0)],
    ids=["short", "two_minutes_with_30s_hold"],
)
def test_broadworks_style_mixed_stream_with_hold_and_resume(
    srs: ServerProcess, tmp_path: Path, talk: float, hold: float, after: float
) -> None:
    call = interop_calls.broadworks_hold_call(
        target(srs), workdir=tmp_path, talk=talk, hold=hold, after=after
    )
    assert call.sipp.ok, call.sipp.describe()
    invites = call.sipp.exchanges("INVITE")
    assert len(invites) == 3, call.sipp.describe()
    (first, first_answer), (held, held_answer), (resumed, resumed_answer) = invites
    # The scenario: BroadWorks' dialect, and a hold by the null address.
    assert first.header("Require") is None
    assert (first.header("Contact") or "").endswith(";src>")
    assert first.body.index("application/rs-metadata+xml") < first.body.index("application/sdp")
    assert "urn:ietf:params:xml:ns:siprec" in first.body and "<recording_metadata" in first.body
    assert "c=IN IP4 0.0.0.0" in held.body and "c=IN IP4 0.0.0.0" not in resumed.body

    # Every re-INVITE is a re-offer: full SDP, the same port, inactive while held (GUIDE §2.4, §2.7).
    assert call.answer is not None
    for response, direction in (
        (first_answer, "recvonly"),
        (held_answer, "inactive"),
        (resumed_answer, "recvonly"),
    ):
        [media] = answer_sdp(response)
        assert (media.port, media.label, media.direction) == (call.answer.port1, "1", direction), media
        assert media.formats[0] == "8", media  # PCMA, the only codec offered besides telephone-event

    row = finished_row(srs, call.call_id)
    assert row["status"] == "complete", row
    assert row["channels"] == 1 and [s["codec"] for s in row["streams"]] == ["PCMA"]
    audio = exported(srs, row, tmp_path)
    assert audio.channels == 1
    # The timeline is kept: the recording is as long as the whole call, the hold is silence.
    assert abs(audio.duration - (talk + hold + after)) < LENGTH_TOLERANCE, audio.duration
    [gap] = silent_spans(audio.channel(0), audio.sample_rate, min_duration=0.2)
    assert abs(gap.duration - hold) < LENGTH_TOLERANCE, gap
    assert abs(gap.start - talk) < LENGTH_TOLERANCE, gap
    assert_tone(
        audio.channel(0)[: int((gap.start - 0.05) * audio.sample_rate)], audio.sample_rate, 440.0, "before"
    )
    assert_tone(
        audio.channel(0)[int((gap.end + 0.05) * audio.sample_rate) :], audio.sample_rate, 440.0, "after"
    )

    # The pause interval is stored, in seconds of the audio, from the hold re-INVITE to the resume.
    origin = audio_origin(row)
    assert len(row["pauses"]) == 1, row["pauses"]
    pause = row["pauses"][0]
    assert pause["end"] is not None, pause
    assert abs(pause["start"] - (held.at - origin)) < 0.25, (pause, held.at - origin)
    assert abs(pause["end"] - (resumed.at - origin)) < 0.25, (pause, resumed.at - origin)
    assert pause["start"] - 0.25 < gap.start and gap.end < pause["end"] + 0.25, (pause, gap)

    aors = " ".join(numbers(row))
    assert "+3614567890" in aors and "06705551234" in aors, row["participants"]


# -- 3. Ribbon: a third body part ---------------------------------------------------------------------


def test_third_body_part_is_recorded_normally(srs: ServerProcess, tmp_path: Path) -> None:
    duration = 3.0
    call = interop_calls.third_part_call(target(srs), workdir=tmp_path, duration=duration)
    assert call.sipp.ok, call.sipp.describe()
    [(invite, answer)] = call.sipp.exchanges("INVITE")
    assert invite.body.count("Content-Type:") == 3 and "Content-Type: application/gtd" in invite.body
    streams = answer_sdp(answer)
    assert [(m.label, m.direction, m.formats[0]) for m in streams] == [
        ("10", "recvonly", "0"),
        ("20", "recvonly", "0"),
    ]

    row = finished_row(srs, call.call_id)
    assert row["status"] == "complete", row
    assert row["channels"] == 2 and [s["label"] for s in row["streams"]] == ["10", "20"]
    audio = exported(srs, row, tmp_path)
    assert abs(audio.duration - duration) < LENGTH_TOLERANCE, audio.duration
    assert_tone(audio.channel(0), audio.sample_rate, 440.0, "left (caller)")
    assert_tone(audio.channel(1), audio.sample_rate, 1000.0, "right (callee)")
    roles = {p["aor"]: p["role"] for p in row["participants"]}
    assert roles == {CALLER_AOR: "caller", CALLEE_AOR: "callee"}, row["participants"]


# -- 4. A four-party conference ------------------------------------------------------------------------

TONES = (300.0, 500.0, 700.0, 900.0)  # participant p (document and associate-time order) speaks TONES[p]
SENDER_OF_MLINE = (2, 0, 3, 1)  # m-line i is sent by participant SENDER_OF_MLINE[i]: not m-line order


def test_four_stream_conference_gives_each_participant_a_channel(srs: ServerProcess, tmp_path: Path) -> None:
    duration = 3.0
    call = interop_calls.conference_call(
        target(srs), workdir=tmp_path, duration=duration, tones=TONES, sender_of_mline=SENDER_OF_MLINE
    )
    assert call.sipp.ok, call.sipp.describe()
    [(_, answer)] = call.sipp.exchanges("INVITE")
    streams = answer_sdp(answer)
    assert [(m.label, m.direction) for m in streams] == [(str(i), "recvonly") for i in (1, 2, 3, 4)]
    assert len({m.port for m in streams}) == 4 and all(m.port for m in streams)

    row = finished_row(srs, call.call_id)
    assert row["status"] == "complete", row
    assert row["channels"] == 4, row
    audio = exported(srs, row, tmp_path)
    assert audio.channels == 4
    assert abs(audio.duration - duration) < LENGTH_TOLERANCE, audio.duration
    assert [s["label"] for s in row["streams"]] == ["1", "2", "3", "4"]
    channels = [s["channel"] for s in row["streams"]]
    assert sorted(channels) == [0, 1, 2, 3], channels
    for index, stream in enumerate(row["streams"]):
        tone = TONES[SENDER_OF_MLINE[index]]
        assert_tone(audio.channel(stream["channel"]), audio.sample_rate, tone, f"m-line {index + 1}")
    assert numbers(row) == set(interop_calls.CONFERENCE_AORS), row["participants"]
    # Channels follow the participants, the caller (first by associate-time) first, as with two parties.
    assert channels == list(SENDER_OF_MLINE), channels

    # A mono mix on request: every party's tone in one channel.
    mono_file = tmp_path / "conference-mono.flac"
    srs.cli("recordings", "export", row["reference"], "-o", str(mono_file), "--mono")
    mono = read_audio(mono_file)
    assert mono.channels == 1 and mono.frames == audio.frames
    spectrum = np.abs(np.fft.rfft(mono.channel(0).astype(np.float64)))
    frequencies = np.fft.rfftfreq(mono.frames, 1 / mono.sample_rate)
    for tone in TONES:
        near = (frequencies > tone - 5) & (frequencies < tone + 5)
        assert spectrum[near].max() > 0.1 * spectrum.max(), f"{tone} Hz missing from the mono mix"


# -- 5. Session refresh (RFC 4028) ---------------------------------------------------------------------


def test_session_refresh_reinvites_keep_one_recording(srs: ServerProcess, tmp_path: Path) -> None:
    every, refreshes, after = 0.8, 4, 1.0
    call = interop_calls.session_refresh_call(
        target(srs), workdir=tmp_path, refresh_every=every, refreshes=refreshes, after=after
    )
    assert call.sipp.ok, call.sipp.describe()
    invites = call.sipp.exchanges("INVITE")
    assert len(invites) == 1 + refreshes, call.sipp.describe()
    assert call.answer is not None
    for request_sent, response in invites:
        assert request_sent.header("Session-Expires") == "90;refresher=uac"
        streams = answer_sdp(response)  # each refresh answered with full SDP ...
        assert [m.port for m in streams] == list(call.answer.ports)  # ... on the same ports
        assert [(m.label, m.direction) for m in streams] == [("1", "recvonly"), ("2", "recvonly")]

    rows = rows_of(srs, call.call_id)
    assert len(rows) == 1, rows  # one recording, not one per re-INVITE
    row = finished_row(srs, call.call_id)
    assert row["status"] == "complete", row
    audio = exported(srs, row, tmp_path)
    length = every * refreshes + after
    assert abs(audio.duration - length) < LENGTH_TOLERANCE, audio.duration
    assert_tone(audio.channel(0), audio.sample_rate, 440.0, "left (caller)")
    assert_tone(audio.channel(1), audio.sample_rate, 1000.0, "right (callee)")
    assert not inner_gaps(audio, 0) and not inner_gaps(audio, 1)
    for stream in row["streams"]:
        assert stream["lost"] == 0 and stream["packets"] >= round((length - 0.2) / PACKET), stream

    # RFC 4028 §9: the 2xx carries the session timer, with the SRC as refresher, and requires it.
    for _, response in invites:
        assert response is not None
        expires = (response.header("Session-Expires", "x") or "").replace(" ", "").lower()
        assert expires == "90;refresher=uac", response.text
        assert "timer" in ",".join(response.headers("Require")).lower(), response.text


# -- 6. A flood while five calls record ----------------------------------------------------------------

FLOOD_RATE = 4000  # malformed datagrams per second
CALL_SECONDS = 8.0


def vm_kb(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(value.split()[0])
    return values


def active_calls(server: ServerProcess) -> int:
    _, body = server.http_get("/healthz")
    return int(json.loads(body)["active_calls"])


def test_flood_leaves_five_recordings_intact_and_memory_bounded(srs: ServerProcess, tmp_path: Path) -> None:
    assert srs.process is not None
    tones = [(400.0 + 100 * i, 1100.0 + 100 * i) for i in range(5)]
    malformed_before = sum(srs.metric("hangtar_sip_malformed_total", outcome=o) for o in ("400", "dropped"))
    with ThreadPoolExecutor(max_workers=5) as pool:
        calls = [
            pool.submit(
                run_siprec_call,
                target(srs),
                workdir=tmp_path / f"call{i}",
                duration=CALL_SECONDS,
                caller_tone=caller,
                callee_tone=callee,
            )
            for i, (caller, callee) in enumerate(tones)
        ]
        deadline = time.monotonic() + 15
        while active_calls(srs) < 5:  # all five answered and recording before the flood starts
            assert time.monotonic() < deadline, f"only {active_calls(srs)} calls up"
            time.sleep(0.05)
        flood = subprocess.run(
            [sys.executable, str(FLOOD), str(srs.sip_port), "--rate", str(FLOOD_RATE), "--max-seconds", "60"],
            capture_output=True,
            text=True,
            timeout=90,
        )
        results: list[SiprecCallResult] = [c.result() for c in calls]
    assert flood.returncode == 0, flood.stderr
    report = json.loads(flood.stdout)
    memory = vm_kb(srs.process.pid)
    malformed_seen = (
        sum(srs.metric("hangtar_sip_malformed_total", outcome=o) for o in ("400", "dropped"))
        - malformed_before
    )
    print(
        f"flood: {report['malformed_sent']} malformed at {report['malformed_rate']:.0f}/s, "
        f"{report['hostile_sent']} hostile INVITEs, {report['elapsed']:.1f} s; server counted {malformed_seen:.0f} "
        f"malformed; RSS {memory['VmRSS'] / 1024:.0f} MB, peak {memory['VmHWM'] / 1024:.0f} MB"
    )

    # The flood was what it says: all of it sent, in time, and it reached the server.
    assert (
        report["malformed_sent"] == 10_000 and report["hostile_sent"] == 100 and not report["stopped_early"]
    )
    assert report["malformed_rate"] > 0.8 * FLOOD_RATE
    assert malformed_seen >= 1000, malformed_seen

    # Hostile XML is refused by the parser, not by refusing the call (GUIDE §2.1): each INVITE recorded, ended.
    for kind, statuses in report["hostile_answers"].items():
        assert set(statuses) == {200}, (kind, statuses)
    assert report["bye_answers"] == [200] * 100
    assert report["canary_hits"] == 0  # no external entity or DTD was fetched
    assert {kind: len(v) for kind, v in report["hostile_answers"].items()} == {
        "billion_laughs": 25,
        "external_entity": 25,
        "external_dtd": 25,
        "huge_document": 25,  # HUGE_DOCUMENT_BYTES of metadata each, over TCP
    }

    # The five recordings are intact: complete, the right length, each tone on its side, no gaps.
    for (caller, callee), call in zip(tones, results, strict=True):
        assert call.sipp.ok, call.sipp.describe()
        row = finished_row(srs, call.sipp.call_id)
        assert row["status"] == "complete", row
        for stream in row["streams"]:
            assert stream["lost"] == 0 and stream["late"] == 0, stream
        audio = exported(srs, row, tmp_path)
        assert abs(audio.duration - CALL_SECONDS) < LENGTH_TOLERANCE, audio.duration
        assert_tone(audio.channel(0), audio.sample_rate, caller, f"{row['reference']} left")
        assert_tone(audio.channel(1), audio.sample_rate, callee, f"{row['reference']} right")
        assert not inner_gaps(audio, 0) and not inner_gaps(audio, 1), row["reference"]

    # Still serving, and the memory stayed under the ceiling throughout (VmHWM is the peak).
    probe = UdpProbe()
    try:
        probe.send(request("OPTIONS", port=srs.sip_port, local_port=probe.port), srs.sip_port)
        assert status_of(probe.final_response()) == 200
    finally:
        probe.close()
    status, health = srs.http_get("/healthz")
    assert status == 200 and json.loads(health)["status"] == "ok", health
    assert memory["VmHWM"] < RSS_CEILING_KB, memory
    leaked = [
        p["name"]
        for row in json.loads(srs.cli("recordings", "list", "--json", "--limit", "1000").stdout)
        for p in row["participants"]
        if p["name"] and ("root:" in p["name"] or "lollol" in p["name"])
    ]
    assert not leaked, leaked[:3]  # no entity was expanded into the catalogue
