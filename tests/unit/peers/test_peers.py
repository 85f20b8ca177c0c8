"""Self-tests of the test peers and audio helpers; none of them needs the SRS."""

from __future__ import annotations

import json
import re
import socket
import struct
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests import audio
from tests.peers import pjsua_report, pjsua_src, sipp_runner, sipp_trace, siprec_offer
from tests.peers.rtp_sender import (
    PTIME,
    SAMPLES_PER_PACKET,
    Codec,
    Impairments,
    RtpSender,
    alaw_decode,
    alaw_encode,
    decode,
    encode,
    plan_stream,
    rtp_packet,
    sine,
    ulaw_decode,
    ulaw_encode,
)

RS_NS = "{urn:ietf:params:xml:ns:recording:1}"
ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)


# -- G.711 -------------------------------------------------------------------------------------------


def test_g711_reference_points() -> None:
    # Silence and both full-scale extremes (ITU-T G.711 tables).
    assert ulaw_encode([0, 32767, -32768]).tolist() == [0xFF, 0x80, 0x00]
    assert alaw_encode([0, 32767, -32768]).tolist() == [0xD5, 0xAA, 0x2A]
    assert ulaw_decode(bytes([0xFF, 0x7F, 0x80, 0x00])).tolist() == [0, 0, 32124, -32124]
    assert alaw_decode(bytes([0xD5, 0x55, 0xAA, 0x2A])).tolist() == [8, -8, 32256, -32256]


@pytest.mark.parametrize("codec", list(Codec))
def test_g711_codes_round_trip_and_quantiser_is_monotonic(codec: Codec) -> None:
    codes = np.arange(256, dtype=np.uint8)
    levels = decode(codec, codes)
    again = encode(codec, levels)
    if codec is Codec.PCMU:  # µ-law has two zeros (0x7F and 0xFF); silence encodes as 0xFF
        assert again[0x7F] == 0xFF
        codes, again = np.delete(codes, 0x7F), np.delete(again, 0x7F)
    assert np.array_equal(again, codes)
    assert np.all(np.diff(decode(codec, encode(codec, ALL_INT16)).astype(np.int32)) >= 0)


@pytest.mark.parametrize("codec", list(Codec))
def test_g711_keeps_a_tone(codec: Codec) -> None:
    tone = sine(1000.0, 1.0, amplitude=0.5)
    decoded = decode(codec, encode(codec, tone)).astype(np.float64)
    noise = decoded - tone
    snr = 10 * np.log10(np.mean(tone.astype(np.float64) ** 2) / np.mean(noise**2))
    assert snr > 30  # G.711 gives ~38 dB on a loud sine
    assert audio.peak_frequency(decoded, 8000) == pytest.approx(1000.0, abs=0.5)


# -- RTP packets and the impairment plan -------------------------------------------------------------


def test_rtp_header_fields_and_wraparound() -> None:
    packet = rtp_packet(
        payload_type=8, seq=65537, timestamp=2**32 + 5, ssrc=0xDEADBEEF, payload=b"\xd5" * 160, marker=True
    )
    first, second, seq, ts, ssrc = struct.unpack("!BBHII", packet[:12])
    assert first == 0x80  # V=2, no padding, no extension, no CSRC
    assert second == 0x80 | 8
    assert (seq, ts, ssrc) == (1, 5, 0xDEADBEEF)
    assert len(packet) == 12 + 160


def test_plan_drops_exactly_the_requested_share_and_never_the_ends() -> None:
    plan = plan_stream(500, Impairments(drop=0.05, drop_indices=frozenset(range(100, 110)), seed=11))
    assert len(plan.dropped) == 10 + 25
    assert set(range(100, 110)) <= set(plan.dropped)
    assert 0 not in plan.dropped and 499 not in plan.dropped
    assert sorted(plan.wire_order) == sorted(set(range(500)) - set(plan.dropped))
    assert plan == plan_stream(500, Impairments(drop=0.05, drop_indices=frozenset(range(100, 110)), seed=11))
    assert plan.dropped != plan_stream(500, Impairments(drop=0.05, seed=12)).dropped


def test_plan_keeps_slot_times_so_losses_become_gaps() -> None:
    plan = plan_stream(50, Impairments(drop_indices=frozenset({10, 11, 12})))
    at = {item.index: item.at for item in plan.items}
    assert at[9] == pytest.approx(9 * PTIME)
    assert at[13] == pytest.approx(13 * PTIME)  # 60 ms of nothing in between
    assert 10 not in at


def test_plan_swaps_delays_and_duplicates_are_what_the_report_says() -> None:
    plan = plan_stream(200, Impairments(swap_pairs=4, delay_count=3, delay_by=5, duplicate=0.02, seed=5))
    order = plan.wire_order
    assert len(plan.swapped) == 4 and len(plan.delayed) == 3 and len(plan.duplicated) == 4
    for earlier, later in plan.swapped:
        assert later == earlier + 1
        assert order.index(later) < order.index(earlier)
    for index in plan.delayed:
        assert order.index(index + 1) < order.index(index)  # overtaken by its successor
    for index in plan.duplicated:
        first = order.index(index)
        assert order[first + 1] == index and order.count(index) == 2
    assert [item.duplicate for item in plan.items].count(True) == 4
    times = [item.at for item in plan.items]
    assert times == sorted(times)
    assert order[0] == 0 and order[-1] == 199


def test_impairments_reject_nonsense() -> None:
    with pytest.raises(ValueError):
        Impairments(drop=1.0)
    with pytest.raises(ValueError):
        Impairments(delay_by=0)
    with pytest.raises(ValueError):
        plan_stream(10, Impairments(drop_indices=frozenset({10})))


def _receive(sock: socket.socket, count: int, timeout: float) -> list[tuple[float, bytes]]:
    sock.settimeout(timeout)
    got: list[tuple[float, bytes]] = []
    while len(got) < count:
        data = sock.recv(2048)
        got.append((time.monotonic(), data))
    return got


def test_sender_puts_the_planned_packets_on_the_wire_in_real_time() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        sender = RtpSender(
            destination=receiver.getsockname(),
            duration=0.6,
            tone_hz=700.0,
            codec=Codec.PCMA,
            ssrc=0xCAFE0001,
            first_seq=65530,  # wraps during the stream
            first_timestamp=2**32 - 480,
            impairments=Impairments(drop=0.1, swap_pairs=1, duplicate=0.04, seed=3),
        )
        expected = len(sender.plan.items)
        sender.start()
        received = _receive(receiver, expected, timeout=2.0)
        report = sender.wait(5.0)

    assert report.datagrams_sent == expected and not report.stopped_early
    headers = [struct.unpack("!BBHII", data[:12]) for _, data in received]
    assert [h[2] for h in headers] == list(report.sent_seqs)
    assert {h[1] & 0x7F for h in headers} == {8} and {h[4] for h in headers} == {0xCAFE0001}
    assert headers[0][1] & 0x80  # marker on the first packet
    assert report.dropped_seqs == tuple((65530 + i) & 0xFFFF for i in report.plan.dropped)
    assert 65535 in report.sent_seqs or 65535 in report.dropped_seqs
    for _, _, seq, ts, _ in headers:
        index = (seq - 65530) & 0xFFFF
        assert ts == (2**32 - 480 + index * SAMPLES_PER_PACKET) & 0xFFFFFFFF
    span = received[-1][0] - received[0][0]
    assert 0.5 < span < 0.8  # 29 packet slots of 20 ms, paced rather than burst
    payload = b"".join(data[12:] for _, data in received)
    assert audio.peak_frequency(alaw_decode(payload), 8000) == pytest.approx(700.0, abs=1.0)


def test_sender_stops_early_on_request() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        sender = RtpSender(destination=receiver.getsockname(), duration=30.0).start()
        _receive(receiver, 5, timeout=2.0)
        sender.stop()
        report = sender.wait(2.0)
    assert report.stopped_early
    assert 5 <= report.datagrams_sent < 100


# -- audio analysis ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frequency", "rate"), [(440.0, 8000), (1000.0, 8000), (3210.5, 16000), (97.0, 48000)]
)
def test_peak_frequency_finds_the_tone(frequency: float, rate: int) -> None:
    t = np.arange(rate) / rate
    assert audio.peak_frequency(0.4 * np.sin(2 * np.pi * frequency * t), rate) == pytest.approx(
        frequency, abs=0.5
    )


def test_peak_frequency_picks_the_stronger_tone_under_noise() -> None:
    rate = 8000
    t = np.arange(2 * rate) / rate
    rng = np.random.default_rng(1)
    mix = 0.3 * np.sin(2 * np.pi * 1000 * t) + 0.1 * np.sin(2 * np.pi * 440 * t) + rng.normal(0, 0.1, t.size)
    assert audio.peak_frequency(mix, rate) == pytest.approx(1000.0, abs=1.0)
    assert audio.tone_present(mix, rate, 1000.0) and not audio.tone_present(mix, rate, 440.0)


def test_silent_spans_are_sample_exact() -> None:
    rate = 8000
    t = np.arange(rate) / rate
    tone = 0.5 * np.cos(2 * np.pi * 50.0 * t)  # slow zero crossings must not count as silence
    tone[2400:2560] = 0  # one lost 20 ms packet at 0.30 s
    tone[4800:5600] = 0  # 100 ms at 0.60 s
    spans = audio.silent_spans(tone, rate)
    assert [(s.start, s.end) for s in spans] == [(0.3, 0.32), (0.6, 0.7)]
    assert audio.silent_spans(sine(440.0, 1.0), rate) == []
    alaw_silence = alaw_decode(bytes([0xD5]) * 800)  # A-law "zero" decodes to 8/32768
    assert [s.duration for s in audio.silent_spans(alaw_silence, rate)] == [0.1]


def test_lost_packets_show_as_silence_at_their_timestamps() -> None:
    # What the loss test expects of a recording: the sender's plan, laid out by timestamp.
    sender = RtpSender(destination=("127.0.0.1", 9), duration=2.0, impairments=Impairments(drop=0.05, seed=8))
    track = np.zeros(sender.plan.packet_count * SAMPLES_PER_PACKET, dtype=np.int16)
    for index in set(sender.plan.wire_order):
        payload = sender.packet(index)[12:]
        track[index * SAMPLES_PER_PACKET : (index + 1) * SAMPLES_PER_PACKET] = ulaw_decode(payload)
    spans = audio.silent_spans(track, 8000, min_duration=0.015)
    lost = sorted(sender.plan.dropped)
    assert len(lost) == 5
    runs: list[list[int]] = []  # adjacent losses merge into one span
    for index in lost:
        if runs and runs[-1][1] == index:
            runs[-1][1] = index + 1
        else:
            runs.append([index, index + 1])
    # A span may run a sample or two longer where the tone itself crosses zero at a packet edge.
    assert [(s.start, s.end) for s in spans] == [
        pytest.approx((a * PTIME, b * PTIME), abs=0.001) for a, b in runs
    ]


def test_read_audio_levels_and_duration(tmp_path: Path) -> None:
    rate = 8000
    left = sine(440.0, 1.5, amplitude=0.5)
    right = np.zeros_like(left)
    path = tmp_path / "call.wav"
    soundfile.write(path, np.stack([left, right], axis=1), rate, subtype="PCM_16")

    recording = audio.read_audio(path)
    assert (recording.channels, recording.sample_rate) == (2, rate)
    assert audio.duration(path) == recording.duration == 1.5
    left_rms, right_rms = audio.channel_rms(recording)
    assert left_rms == pytest.approx(0.5 / np.sqrt(2), rel=0.01)
    assert right_rms == 0.0 and audio.dbfs(right_rms) == float("-inf")
    assert audio.dbfs(left_rms) == pytest.approx(-9.03, abs=0.1)
    assert audio.peak_frequency(recording.channel(0), rate) == pytest.approx(440.0, abs=0.5)
    assert audio.silent_spans(recording.channel(1), rate) == [audio.Span(start=0.0, end=1.5)]


# -- the pjsua2 SRC --------------------------------------------------------------------------------

PJSUA_OFFER = (
    "v=0\r\no=- 3913 3913 IN IP4 127.0.0.1\r\ns=pjmedia\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 0 8 120\r\nc=IN IP4 127.0.0.1\r\na=sendonly\r\na=rtpmap:0 PCMU/8000\r\n"
    "m=audio 4002 RTP/AVP 0 8 120\r\nc=IN IP4 127.0.0.1\r\na=sendonly\r\na=rtpmap:0 PCMU/8000\r\n"
)


def test_labels_go_to_their_own_m_lines() -> None:
    labelled = siprec_offer.add_labels(PJSUA_OFFER, ("10", "20"))
    blocks = labelled.split("m=audio")
    assert "a=label:10\r\n" in blocks[1] and "a=label:10" not in blocks[2]
    assert blocks[2].endswith("a=label:20\r\n")
    assert siprec_offer.add_labels(labelled, ("10", "20")) == labelled  # re-offers do not stack labels


def test_metadata_maps_caller_and_callee_to_labels() -> None:
    root = ET.fromstring(siprec_offer.build_metadata(("1", "2")))
    assert root.tag == f"{RS_NS}recording"
    names = {p.get("participant_id"): p.find(f"{RS_NS}nameID") for p in root.iter(f"{RS_NS}participant")}
    aors = {pid: name.get("aor") for pid, name in names.items() if name is not None}
    labels = {s.get("stream_id"): s.findtext(f"{RS_NS}label") for s in root.iter(f"{RS_NS}stream")}
    sends = {
        a.get("participant_id"): a.findtext(f"{RS_NS}send")
        for a in root.iter(f"{RS_NS}participantstreamassoc")
    }
    assert {aors[p]: labels[s] for p, s in sends.items()} == {
        "sip:+3612345678@pbx.example.hu": "1",
        "sip:+3619876543@pbx.example.hu": "2",
    }
    assert ET.fromstring(siprec_offer.build_metadata(None)).find(f"{RS_NS}stream") is None


def test_bye_outcome_is_read_from_the_sip_log() -> None:
    log = (
        "19:06:06.537  pjsua_core.c  ....TX 366 bytes Request msg BYE/cseq=7108 (tdta0x5582) to UDP "
        "127.0.0.1:37208:\n"
        "19:06:06.537  pjsua_core.c  .RX 287 bytes Response msg 200/BYE/cseq=7108 (rdata0x5582) from UDP "
        "127.0.0.1:37208:\n"
    )
    assert pjsua_report.bye_results(log) == (200, False)
    assert pjsua_report.bye_results(
        "RX 410 bytes Request msg BYE/cseq=2 (rdata0x1) from TCP 10.0.0.5:5060:"
    ) == (0, True)
    assert pjsua_report.bye_results("TX 366 bytes Request msg BYE/cseq=7108") == (0, False)


def _parts(message: bytes) -> dict[str, str]:
    """The parts of a multipart SIP body by content type (RFC 2046 §5.1.1 delimiters)."""
    head, _, body = message.partition(b"\r\n\r\n")
    content_type = re.search(rb"(?im)^content-type:\s*multipart/mixed\s*;\s*boundary=\"?([^\";\r\n]+)", head)
    assert content_type, head
    delimiter = b"--" + content_type.group(1)
    assert body.rstrip().endswith(delimiter + b"--")
    parts = {}
    for chunk in body.split(delimiter)[1:-1]:
        part_head, _, part_body = chunk.strip(b"\r\n").partition(b"\r\n\r\n")
        kind = re.search(rb"(?im)^content-type:\s*([\w/+.-]+)", part_head)
        assert kind, part_head
        parts[kind.group(1).decode().lower()] = part_body.decode()
    return parts


def _check_siprec_invite(message: bytes) -> None:
    head = message.partition(b"\r\n\r\n")[0].decode()
    assert re.search(r"(?im)^Require:\s*siprec\s*$", head)
    assert re.search(r"(?im)^Contact:.*\+sip\.src", head)
    parts = _parts(message)
    sdp = parts["application/sdp"]
    m_lines = sdp.split("m=audio")[1:]
    assert len(m_lines) == 2
    assert ["a=sendonly" in block for block in m_lines] == [True, True]
    assert [re.findall(r"a=label:(\S+)", block) for block in m_lines] == [["1"], ["2"]]
    root = ET.fromstring(parts["application/rs-metadata+xml"])
    assert sorted(s.findtext(f"{RS_NS}label") or "" for s in root.iter(f"{RS_NS}stream")) == ["1", "2"]


def test_pjsua_src_offers_a_siprec_invite_and_gives_up_when_unanswered(tmp_path: Path) -> None:
    script = Path(pjsua_src.__file__)
    report_path = tmp_path / "report.json"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent_srs:
        silent_srs.bind(("127.0.0.1", 0))
        silent_srs.settimeout(10)
        port = silent_srs.getsockname()[1]
        started = time.monotonic()
        process = subprocess.Popen(
            [
                sys.executable,
                str(script),
                "--target",
                f"sip:srs@127.0.0.1:{port}",
                "--answer-timeout",
                "1.5",
                "--bye-timeout",
                "1",
                "--json-out",
                str(report_path),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            invite = silent_srs.recv(65535)
            stdout, stderr = process.communicate(timeout=20)
        finally:
            process.kill()
    elapsed = time.monotonic() - started

    assert invite.startswith(b"INVITE sip:srs@127.0.0.1:")
    _check_siprec_invite(invite)
    assert process.returncode == pjsua_report.ExitCode.NO_ANSWER, stderr.decode()[-2000:]
    report = json.loads(report_path.read_text())
    assert json.loads(stdout.decode().strip().splitlines()[-1]) == report
    assert report["outcome"] == "no_answer" and report["status"] == 0
    assert report["invite"].encode() == invite
    assert elapsed < 10


# -- SIPp ----------------------------------------------------------------------------------------------

OK_200 = (
    "SIP/2.0 200 OK\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n\r\n"
    "v=0\r\nm=audio 4000 RTP/AVP 0\r\n\n"
)
SIPP_TRACE = (
    "----------------------------------------------- 2026-11-28 19:13:25.400698\n"
    "UDP message sent (40 bytes):\n\n"
    "INVITE sip:srs@127.0.0.1:5070 SIP/2.0\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n\n"
    "----------------------------------------------- 2026-11-28 19:13:25.401779\n"
    "UDP message received [236] bytes :\n\n"
    f"{OK_200}"
    "----------------------------------------------- 2026-11-28 19:13:25.903802\n"
    "UDP message received [236] bytes :\n\n"
    f"{OK_200}"
    "----------------------------------------------- 2026-11-28 19:13:29.207884\n"
    "TCP message sent (60 bytes):\n\n"
    "ACK sip:srs@127.0.0.1:5070 SIP/2.0\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n\n"
)


def test_sipp_message_trace_is_parsed_with_times() -> None:
    messages = sipp_trace.parse_message_trace(SIPP_TRACE)
    assert [(m.sent, m.method, m.status, m.cseq_method) for m in messages] == [
        (True, "INVITE", None, "INVITE"),
        (False, None, 200, "INVITE"),
        (False, None, 200, "INVITE"),
        (True, "ACK", None, "ACK"),
    ]
    assert messages[2].at - messages[1].at == pytest.approx(0.502023)
    assert messages[1].body.startswith("v=0")
    assert messages[3].transport == "TCP"


def test_sipp_log_events() -> None:
    events = sipp_trace.parse_log_events("ANSWER ip=10.1.2.3 port1=40000 port2=40002\nOK200 tick=104\n")
    assert events == [
        ("ANSWER", {"ip": "10.1.2.3", "port1": "40000", "port2": "40002"}),
        ("OK200", {"tick": "104"}),
    ]


@pytest.mark.parametrize(
    ("scenario", "sets"),
    [(sipp_runner.SIPREC_UAC, {}), (sipp_runner.SIPREC_UAC_NOACK, {"ack_delay_ms": "0"})],
    ids=["uac", "uac_noack"],
)
def test_sipp_scenario_sends_a_siprec_invite(scenario: Path, sets: dict[str, str], tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent_srs:
        silent_srs.bind(("127.0.0.1", 0))
        silent_srs.settimeout(10)
        host, port = silent_srs.getsockname()
        sipp = sipp_runner.SippProcess(
            scenario=scenario,
            target=f"{host}:{port}",
            workdir=tmp_path,
            local_ip="127.0.0.1",
            sets=sets,
            timeout=5,
        )
        with sipp:
            invite = silent_srs.recv(65535)
            retransmitted = silent_srs.recv(65535)  # SIPp's retrans="500" on UDP
            with pytest.raises(sipp_runner.SippError):
                sipp.wait_for_answer(timeout=0.2)
        result = sipp.wait()
    _check_siprec_invite(invite)
    assert retransmitted == invite
    assert result.sent(method="INVITE") and not result.received()
