"""End to end: an Opus SIPREC call from SIPp, its media replayed from a capture (RFC 7587 payloads).

SIPp offers two sendonly Opus m-lines (``tests/peers/sipp/siprec_opus_pcap.xml``). Each leg is a tone encoded
by libopus (PyAV) into 20 ms RTP packets on the 48 kHz clock: leg 1 written to a pcap file that SIPp's
``play_pcap_audio`` replays with the capture's timing to the first answered m-line, leg 2 (stereo Opus,
``sprop-stereo=1``) replayed by the test itself to the second m-line, since SIPp can feed only the first
``m=audio`` line. Key presses travel in leg 1 as RFC 4733 telephone-events (payload type 101 at 48000 Hz),
inside the same capture.

The answer must take Opus and the telephone-event at Opus's clock; the recording is wideband (16 kHz: any
stream that is not narrowband makes it so, README "media"), stereo, caller left, each channel its leg's tone at
its level; it lasts as long as the media sent.
"""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tests.audio import peak_frequency, read_audio, rms
from tests.peers.opus_rtp import (
    KeyPress,
    OpusLeg,
    SendResult,
    datagrams,
    encode_opus,
    opus_leg,
    send_paced,
    tone,
)
from tests.peers.pcap_writer import read_pcap, write_pcap
from tests.peers.sipp_runner import SCENARIOS, SippProcess, siprec_keys
from tests.peers.sipp_trace import Answer, SippResult, sdp_media

from .server import ServerProcess
from .test_dtmf_from_src import assert_keys_not_in_audio
from .test_recording_calls import export, finished, media_span, sipp_call_id

SCENARIO = SCENARIOS / "siprec_opus_pcap.xml"
CAPTURE = "caller_opus.pcap"  # the name the scenario's play_pcap_audio asks for
SECONDS = 4.0
CALLER_HZ = 440.0
CALLEE_HZ = 5000.0  # above a narrowband recording's 4 kHz: only a wideband one keeps it
AMPLITUDE = 0.3
TONE_RMS = AMPLITUDE / np.sqrt(2)


@dataclass(frozen=True, slots=True, kw_only=True)
class OpusCall:
    sipp: SippResult
    answer: Answer
    caller: OpusLeg  # leg 1, replayed by SIPp from the capture
    callee: OpusLeg  # leg 2, replayed by the test
    callee_sent: SendResult
    captured: int  # packets in the capture file


def run_opus_call(server: ServerProcess, workdir: Path, presses: Sequence[KeyPress] = ()) -> OpusCall:
    caller = opus_leg(
        encode_opus(tone(CALLER_HZ, SECONDS, amplitude=AMPLITUDE)),
        ssrc=int.from_bytes(uuid.uuid4().bytes[:4], "big"),
        presses=presses,
    )
    callee = opus_leg(
        encode_opus(tone(CALLEE_HZ, SECONDS, amplitude=AMPLITUDE), channels=2, bitrate=48000),
        ssrc=int.from_bytes(uuid.uuid4().bytes[:4], "big"),
        first_seq=65500,  # wraps past 65535 mid-call
        first_timestamp=0xFFFF0000,  # and the timestamp past 2**32
    )
    workdir.mkdir(parents=True, exist_ok=True)
    # SIPp reads the capture when it loads the scenario, and looks for it next to the scenario first.
    scenario = Path(shutil.copy(SCENARIO, workdir))
    # Addresses and ports in the capture do not matter: SIPp sends from its media port to the answer's.
    captured = write_pcap(
        workdir / CAPTURE,
        datagrams(caller, source=("192.0.2.10", 30000), destination=("192.0.2.20", 40000)),
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtp_socket:
        rtp_socket.bind(("127.0.0.1", 0))
        sipp = SippProcess(
            scenario=scenario,
            target=f"127.0.0.1:{server.sip_port}",
            workdir=workdir,
            duration=SECONDS + 0.5,  # BYE after the capture has played out
            keys=siprec_keys(stream2_port=int(rtp_socket.getsockname()[1])),
            local_ip="127.0.0.1",
        )
        with sipp:
            answer = sipp.wait_for_answer(10.0)
            sent = send_paced(callee.packets, (answer.ip, answer.port2), rtp_socket)
            result = sipp.wait()
    return OpusCall(
        sipp=result, answer=answer, caller=caller, callee=callee, callee_sent=sent, captured=captured
    )


def recorded(server: ServerProcess, call: OpusCall) -> dict[str, Any]:
    assert call.sipp.ok, call.sipp.describe()
    assert call.callee_sent.sent == len(call.callee.packets)
    # SIPp read every packet of the capture (prepare_pcap.c reports what it loaded).
    assert f"npkts {call.captured}" in call.sipp.output, call.sipp.output
    row = server.wait_for_recording(
        finished(sipp_call_id(call.sipp.received(status=200, cseq="INVITE")[0].text))
    )
    assert row["status"] == "complete", row
    return row


def test_capture_round_trips(tmp_path: Path) -> None:
    # What SIPp will read is what the leg holds: times, ports and RTP packets, byte for byte.
    leg = opus_leg(
        encode_opus(tone(CALLER_HZ, 0.2)), ssrc=7, presses=[KeyPress(at=0.04, digit="#", duration=0.06)]
    )
    source, destination = ("192.0.2.10", 30000), ("192.0.2.20", 40000)
    assert write_pcap(tmp_path / "leg.pcap", datagrams(leg, source=source, destination=destination)) == 12
    back = read_pcap(tmp_path / "leg.pcap")
    assert [d.payload for d in back] == [p.data for p in leg.packets]
    assert [round(d.at, 6) for d in back] == [round(p.at, 6) for p in leg.packets]
    assert {(d.source, d.destination) for d in back} == {(source, destination)}
    assert (leg.audio_packets, leg.event_packets) == (7, 5)  # 3 frames of event: 2 updates + the end 3 times


def test_sipp_opus_call_is_recorded_wideband_stereo(server: ServerProcess, tmp_path: Path) -> None:
    call = run_opus_call(server, tmp_path)
    row = recorded(server, call)

    offer = sdp_media(call.sipp.sent(method="INVITE")[0].body.split("--hangtar-siprec-7f3a")[1])
    assert offer[0].formats == ("111", "0", "100", "101")
    # RFC 3264 §6.1: Opus, the offerer's first choice; RFC 4733 §2.1: the telephone-event at Opus's clock,
    # though telephone-event/8000 was offered first.
    answer = sdp_media(call.sipp.received(status=200, cseq="INVITE")[0].body)
    assert [m.port for m in answer] == [call.answer.port1, call.answer.port2]
    for media, label in zip(answer, ("1", "2"), strict=True):
        assert media.formats == ("111", "101"), media
        assert media.rtpmap == ("111 opus/48000/2", "101 telephone-event/48000"), media
        assert (media.direction, media.label) == ("recvonly", label)

    assert (row["sample_rate"], row["channels"], row["format"]) == (16000, 2, "flac")
    streams = row["streams"]
    assert [(s["label"], s["codec"], s["payload_type"]) for s in streams] == [
        ("1", "OPUS", 111),
        ("2", "OPUS", 111),
    ]
    for stream, leg in zip(streams, (call.caller, call.callee), strict=True):
        assert stream["packets"] == len(leg.packets), stream
        assert (stream["lost"], stream["late"], stream["telephone_events"], stream["dtmf"]) == (0, 0, 0, [])
        assert stream["ssrc"] == leg.ssrc

    audio = read_audio(export(server, row["reference"], tmp_path / "opus.flac"))
    assert audio.sample_rate == 16000 and audio.channels == 2
    left, right = audio.channel(0), audio.channel(1)
    left_peak, right_peak = peak_frequency(left, audio.sample_rate), peak_frequency(right, audio.sample_rate)
    print(f"Opus call: left {left_peak:.1f} Hz, right {right_peak:.1f} Hz, {audio.duration:.3f} s")
    assert abs(left_peak - CALLER_HZ) < 3
    assert abs(right_peak - CALLEE_HZ) < 5  # came through Opus, the 48 → 16 kHz decimation and the file
    # Levels as sent: the mono leg as is, the stereo leg downmixed (both channels carry the tone).
    middle = slice(round(0.5 * audio.sample_rate), round(3.5 * audio.sample_rate))
    for channel in (left, right):
        assert abs(20 * np.log10(rms(channel[middle]) / TONE_RMS)) < 1.5
    assert abs(audio.duration - SECONDS) < 0.25, audio.duration
    assert abs(audio.duration - media_span(row)) < 0.04


def test_sipp_key_presses_in_an_opus_capture(server: ServerProcess, tmp_path: Path) -> None:
    presses = [KeyPress(at=1.0, digit="5"), KeyPress(at=2.5, digit="#")]
    call = run_opus_call(server, tmp_path, presses)
    row = recorded(server, call)
    caller, callee = row["streams"]
    assert (
        caller["telephone_events"] == call.caller.event_packets == 2 * 10
    )  # per 160 ms press: 7 updates, the end thrice
    assert caller["packets"] == len(call.caller.packets) and caller["lost"] == 0
    assert (callee["telephone_events"], callee["dtmf"]) == (0, [])

    # Placed by RTP timestamp on the caller's stream, which starts `offset` into the recording.
    firsts = [dt.datetime.fromisoformat(s["first_packet_at"]).timestamp() for s in row["streams"]]
    offset = firsts[0] - min(firsts)
    found = caller["dtmf"]
    assert [p["digit"] for p in found] == [None, None], found  # digits are not kept by default
    for press, start in zip(found, call.caller.press_starts, strict=True):
        assert abs(press["at"] - (offset + start)) < 0.02, (press, offset + start)
        assert press["duration"] == 0.16, press

    audio = read_audio(export(server, row["reference"], tmp_path / "opus_dtmf.flac"))
    assert audio.sample_rate == 16000
    for press, sent in zip(found, presses, strict=True):
        assert_keys_not_in_audio(audio, press, sent.digit, (CALLER_HZ, CALLEE_HZ), sent.duration)
