"""SRTP in the media path: decrypted per stream before the timeline, failures counted, never heard."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from media.decrypt import decrypt_batch
from media.recorder import CallRecorder, StreamSpec
from media.srtp import SRTP_SUITES, SrtpDecryptor, SrtpKey
from tests.unit.media.helpers import (
    T0,
    Packets,
    SrtpSrc,
    g711,
    pcmu,
    pcmu_stream,
    rtcp_receiver_report,
    simulate,
    tone,
)

AUDIO = tone(440, 150 * 160)  # 3 s
CALLEE_AUDIO = tone(1000, 150 * 160, amplitude=5000)


def legs() -> tuple[Packets, Packets]:
    return (
        pcmu_stream(AUDIO, ssrc=0x5EC0, seq0=65500, ts0=4_294_960_000, start=T0),
        pcmu_stream(CALLEE_AUDIO, ssrc=0x5EC1, seq0=10, ts0=0, start=T0 + 0.25),
    )


def recorder(caller_key: SrtpKey | None, callee_key: SrtpKey | None = None) -> CallRecorder:
    streams = [
        StreamSpec(index=0, channel=0, codec=pcmu(), payload_type=0, srtp=caller_key),
        StreamSpec(index=1, channel=1, codec=pcmu(), payload_type=0, srtp=callee_key),
    ]
    return CallRecorder(streams=streams, channels=2)


def plain_recording() -> np.ndarray:
    caller, callee = legs()
    return simulate(recorder(None), {0: caller, 1: callee}, start=T0, end=T0 + 3.25)


@pytest.mark.parametrize("suite", SRTP_SUITES)
def test_srtp_call_records_the_same_audio_as_the_plain_call(suite: str) -> None:
    caller, callee = legs()
    caller_src, callee_src = SrtpSrc(suite, seed=1), SrtpSrc(suite, seed=2)
    protected = caller_src.protect(caller)
    protected.insert(100, (T0 + 2.0, caller_src.protect_rtcp(rtcp_receiver_report(0x5EC0))))  # SRTCP, muxed
    call = recorder(caller_src.key, callee_src.key)
    out = simulate(call, {0: protected, 1: callee_src.protect(callee)}, start=T0, end=T0 + 3.25)
    assert np.array_equal(out, plain_recording())
    assert np.array_equal(out[:24000, 0], g711(AUDIO))
    stats = call.result().streams
    assert [(s.packets, s.srtp_failures, s.lost, s.invalid) for s in stats] == [(150, 0, 0, 0)] * 2
    assert stats[0].rtcp_packets == 1


def test_wrong_key_gives_no_audio_and_counts_every_packet() -> None:
    caller, callee = legs()
    src = SrtpSrc("AES_CM_128_HMAC_SHA1_80", seed=1)
    call = recorder(SrtpSrc("AES_CM_128_HMAC_SHA1_80", seed=99).key)
    out = simulate(call, {0: src.protect(caller), 1: callee}, start=T0, end=T0 + 3.25)
    assert not out[:, 0].any()
    # The recording starts with the first audio anyone sent: the callee's, 250 ms in.
    assert np.array_equal(out, plain_recording()[2000:] * np.array([0, 1], dtype=np.int16))
    first = call.result().streams[0]
    assert (first.packets, first.srtp_failures, first.first_packet_at) == (0, 150, None)


def test_wrong_key_on_every_stream_records_nothing() -> None:
    caller, _ = legs()
    src = SrtpSrc("AEAD_AES_128_GCM", seed=1)
    call = recorder(SrtpSrc("AEAD_AES_128_GCM", seed=3).key, SrtpSrc("AEAD_AES_128_GCM", seed=4).key)
    call.add(0, src.protect(caller))
    assert call.mix(T0 + 10) is None and call.mix_final(T0 + 10) is None
    result = call.result()
    assert (result.media_start, result.frames, result.streams[0].srtp_failures) == (None, 0, 150)


def test_replayed_tampered_plain_and_oversized_datagrams_never_reach_the_audio() -> None:
    caller, _ = legs()
    src = SrtpSrc("AES_CM_128_HMAC_SHA1_32", seed=5)
    protected = src.protect(caller)
    tampered = bytearray(protected[60][1])
    tampered[30] ^= 0x01
    attack: Packets = [
        *protected[:60],
        (T0 + 1.2, bytes(tampered)),  # packet 60 corrupted on the way: it is lost, not noise
        *protected[61:80],
        (T0 + 1.6, protected[70][1]),  # replayed (RFC 3711 §3.3.2)
        (T0 + 1.6, caller[79][1]),  # the same packet unprotected
        (T0 + 1.6, bytes(1800)),  # beyond libsrtp's buffer
        (T0 + 1.6, b""),
        *protected[80:],
    ]
    call = recorder(src.key)
    out = simulate(call, {0: attack}, start=T0, end=T0 + 3.25)
    want = g711(AUDIO)
    want[60 * 160 : 61 * 160] = 0
    assert np.array_equal(out[:24000, 0], want)
    stats = call.result().streams[0]
    assert (stats.packets, stats.srtp_failures, stats.lost, stats.duplicated, stats.invalid) == (
        149,
        5,
        1,
        0,
        0,
    )


def test_decrypt_batch_keeps_arrival_times_and_order() -> None:
    caller, _ = legs()
    src = SrtpSrc("AES_CM_128_HMAC_SHA1_80", seed=8)
    batch = [
        *src.protect(caller[:3]),
        (T0 + 0.07, b"\x80\xc8garbage"),
        (T0 + 0.08, src.protect(caller[3:4])[0][1]),
    ]
    plain, failures = decrypt_batch(SrtpDecryptor(src.key), batch)
    assert plain == [*caller[:3], (T0 + 0.08, caller[3][1])]
    assert failures == 1
    assert decrypt_batch(SrtpDecryptor(src.key), []) == ([], 0)


def test_srtcp_sender_reports_align_the_legs() -> None:
    # Both legs leave the SRC at once; the callee's path is 250 ms slower. The SRs come as SRTCP: the caller's
    # RTP timestamps wrap around 2**32 between its first packet and its SR.
    caller, callee = legs()
    caller_src, callee_src = SrtpSrc("AES_CM_128_HMAC_SHA1_80", seed=3), SrtpSrc("AEAD_AES_128_GCM", seed=4)
    ntp = (3_913_000_000 + 1) << 32  # SRC time 1.0 s into the call, on the SRC's clock
    caller_sr = struct.pack("!BBHIQIII", 0x80, 200, 6, 0x5EC0, ntp, (4_294_960_000 + 8000) % 2**32, 50, 8000)
    callee_sr = struct.pack("!BBHIQIII", 0x80, 200, 6, 0x5EC1, ntp, 8000, 50, 8000)
    protected_caller = sorted([*caller_src.protect(caller), (T0 + 1.0, caller_src.protect_rtcp(caller_sr))])
    protected_callee = sorted([*callee_src.protect(callee), (T0 + 1.25, callee_src.protect_rtcp(callee_sr))])
    call = recorder(caller_src.key, callee_src.key)
    out = simulate(call, {0: protected_caller, 1: protected_callee}, start=T0, end=T0 + 3.25)
    stats = call.result().streams
    assert [(s.rtcp_sender_reports, s.srtp_failures, s.rtcp_sr_rejected) for s in stats] == [(1, 0, 0)] * 2
    # 250 ms apart, but the callee may move at most 200 ms earlier: the caller moves 50 ms later.
    assert [s.alignment_seconds for s in stats] == [pytest.approx(0.05), pytest.approx(-0.2)]
    # Both legs end together at SRC time 3 s: 400 samples after the caller's unmoved end.
    assert np.flatnonzero(out[:, 0])[-1] == np.flatnonzero(g711(AUDIO))[-1] + 400
    assert np.flatnonzero(out[:, 1])[-1] == np.flatnonzero(g711(CALLEE_AUDIO))[-1] + 400
