"""The batch path (a socket read handed on in place) against the per-packet path: the same, sample for sample.

A plain batch of G.711 (every packet next in sequence, one payload length, timestamps back to back, on time,
no pause) is checked and placed as a whole by ``StreamTimeline.add_batch``; any other batch goes through
``StreamTimeline.add``. Each test builds the traffic of a real call — two legs with loss, reordering,
duplicates, jitter, SSRC changes, wrap-around, DTX with comfort noise, key presses, RTCP, garbage, pauses —
records it both ways and requires the same frames, statistics and result, and that clean traffic really took
the whole-batch path.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
import pytest

from media.codecs import Codec, codec_for
from media.g711 import encode_alaw, encode_ulaw
from media.placement import Placement
from media.recorder import CallRecorder, StreamSpec
from media.rtcp import NTP_UNIX_OFFSET
from media.timeline import StreamTimeline
from media.udp_batch import MAX_DATAGRAM, DatagramBatch
from tests.unit.media.helpers import T0, Packets, pcmu, rtp, simulate, telephone_event, tone

SECONDS = 6.0
TE_PT = 101
CN_PT = 13


@dataclass(frozen=True, slots=True, kw_only=True)
class Impairments:
    """What the network and the SRC do to one leg; times are seconds into the call."""

    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    jitter: float = 0.0  # uniform extra delay, seconds
    late: int = 0  # packets held back beyond the reorder window
    garbage: int = 0  # datagrams that are not this stream's RTP
    ssrc_change_at: float | None = None
    ssrc_only: bool = False  # the new SSRC continues the old sequence numbers and timestamps
    ts_jump_at: float | None = None  # the SRC's timestamps jump 5 s ahead
    dtx: tuple[float, float] | None = None  # no audio in between, one comfort-noise packet at its start
    suppressed: tuple[float, float] | None = None  # no audio in between, not even comfort noise
    # The caller's packets sent in between arrive at its end, all at once (and the callee's, with outage_both).
    outage: tuple[float, float] | None = None
    outage_both: bool = False
    clock_step: float | None = None  # our wall clock steps half a second back then
    dtmf_at: float | None = None  # an RFC 4733 key press in place of 100 ms of audio
    ptime_30_at: float | None = None  # 30 ms packets from then on
    marker_every: int = 0  # a marker bit every n packets (talkspurt starts)
    odd_every: int = 0  # every n-th packet one octet longer than its duration (a sender's slip)
    short_every: int = 0  # every n-th packet cut to 100 octets (truncated on the way)
    empty_at: float | None = None  # 20 header-only packets instead of audio (a keep-alive during silence)
    reports: bool = False  # an RTCP SR every 2 s, on the SRC's clock
    seq0: int = 1000
    ts0: int = 160_000


@dataclass(slots=True)
class _Source:
    ssrc: int
    seq: int
    ts: int


def leg(
    index: int, imp: Impairments, rng: random.Random, encode: Callable[[npt.ArrayLike], bytes], pt: int
) -> Packets:
    """One leg of a call as it reaches the recorder: ``(arrival, datagram)`` in arrival order."""
    audio = encode(tone(440.0 + 560.0 * index, int(SECONDS * 8000) + 8000, amplitude=6000.0))
    source = _Source(ssrc=0x51C0_0000 + index, seq=imp.seq0, ts=imp.ts0)
    sent: Packets = []
    at = 0.0  # seconds of audio sent so far
    k = 0
    dtx_sent = dtmf_sent = False
    while at < SECONDS:
        ptime = 0.03 if imp.ptime_30_at is not None and at >= imp.ptime_30_at else 0.02
        size = round(ptime * 8000)
        if imp.ssrc_change_at is not None and at >= imp.ssrc_change_at and source.ssrc == 0x51C0_0000 + index:
            if imp.ssrc_only:
                source = _Source(ssrc=0x7E00_0000 + index, seq=source.seq, ts=source.ts)
            else:
                source = _Source(
                    ssrc=0x7E00_0000 + index, seq=rng.randrange(1 << 16), ts=rng.randrange(1 << 32)
                )
        if imp.ts_jump_at is not None and at >= imp.ts_jump_at:
            source.ts += 5 * 8000
            imp = replace(imp, ts_jump_at=None)
        send = T0 + 0.01 * index + at
        if imp.suppressed is not None and imp.suppressed[0] <= at < imp.suppressed[1]:
            pass  # the timestamp runs on, the sequence number does not (RFC 3551 §4.1)
        elif imp.dtx is not None and imp.dtx[0] <= at < imp.dtx[1]:
            if not dtx_sent:
                sent.append((send, rtp(source.seq, source.ts, source.ssrc, b"\x40", pt=CN_PT)))
                source.seq += 1
                dtx_sent = True
        elif imp.dtmf_at is not None and imp.dtmf_at <= at and not dtmf_sent:
            for n in range(8):  # 100 ms of key press, the end packet sent three times (RFC 4733 §2.5.1.4)
                payload = telephone_event(5, end=n >= 5, duration=min(n + 1, 5) * 160)
                sent.append(
                    (send + min(n, 5) * 0.02, rtp(source.seq, source.ts, source.ssrc, payload, pt=TE_PT))
                )
                source.seq += 1
            at += 0.1
            source.ts += 800
            dtmf_sent = True
            continue
        elif imp.empty_at is not None and imp.empty_at <= at < imp.empty_at + 0.4:
            sent.append((send, rtp(source.seq, source.ts, source.ssrc, b"", pt=pt)))
            source.seq += 1
        else:
            offset = int(at * 8000) % (len(audio) - size)
            marker = k == 0 or (imp.marker_every > 0 and k % imp.marker_every == 0)
            payload = audio[offset : offset + size]
            if imp.odd_every and k % imp.odd_every == imp.odd_every - 1:
                payload += b"\x7f"
            if imp.short_every and k % imp.short_every == imp.short_every - 1:
                payload = payload[:100]
            sent.append((send, rtp(source.seq, source.ts, source.ssrc, payload, pt=pt, marker=marker)))
            source.seq += 1
            k += 1
        if imp.reports and k % 100 == 50:
            sent.append((send, sender_report(source.ssrc, T0 + 12.3 + at, source.ts, k)))
        source.ts += size
        at += ptime
    return impair(sent, imp, rng)


def impair(sent: Packets, imp: Impairments, rng: random.Random) -> Packets:
    arrived: Packets = []
    for when, data in sent:
        if rng.random() < imp.loss:
            continue
        arrival = when + 0.002 + rng.uniform(0.0, imp.jitter)
        arrived.append((arrival, data))
        if rng.random() < imp.duplicate:
            arrived.append((arrival + rng.uniform(0.0, 0.05), data))
    for i in range(len(arrived) - 1):
        if rng.random() < imp.reorder:  # sent after its successor
            (a, first), (b, second) = arrived[i], arrived[i + 1]
            arrived[i], arrived[i + 1] = (a, second), (b + 0.0001, first)
    for i in rng.sample(range(len(arrived)), imp.late):
        arrived[i] = (arrived[i][0] + 0.8, arrived[i][1])  # beyond the 0.3 s reorder window
    if imp.outage is not None:
        begin, end = (T0 + t for t in imp.outage)
        arrived = [(end + (a - begin) / 1000 if begin <= a < end else a, d) for a, d in arrived]
    for _ in range(imp.garbage):
        junk = rng.randbytes(rng.choice([1, 7, 11, 12, 40, 172]))
        if rng.random() < 0.5:  # parses as RTP of a stranger: version 2, PCMU, another SSRC
            junk = rtp(rng.randrange(1 << 16), rng.randrange(1 << 32), rng.randrange(1 << 32), junk)
        arrived.append((T0 + rng.uniform(0.0, SECONDS), junk))
    arrived.sort(key=lambda packet: packet[0])
    if imp.clock_step is not None:  # stamped 0.5 s earlier from then on, in the order they came
        step = T0 + imp.clock_step
        arrived = [(a - 0.5 if a >= step else a, d) for a, d in arrived]
    return arrived


def sender_report(ssrc: int, ntp_time: float, rtp_ts: int, packets: int) -> bytes:
    """An RTCP SR without report blocks, plus SDES CNAME, as an SRC sends it (RFC 3550 §6.4.1, §6.5)."""
    ntp = round((ntp_time + NTP_UNIX_OFFSET) * 2**32)
    sr = struct.pack("!BBHIQIII", 0x80, 200, 6, ssrc, ntp, rtp_ts & 0xFFFFFFFF, packets, packets * 160)
    cname = b"src@sbc.example"
    item = bytes([1, len(cname)]) + cname
    chunk = struct.pack("!I", ssrc) + item + bytes(4 - len(item) % 4)
    return sr + struct.pack("!BBH", 0x81, 202, len(chunk) // 4) + chunk


@pytest.fixture
def plain_batches(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts the batches placed whole (``Placement.place_octets``)."""
    calls: list[int] = []
    original = Placement.place_octets

    def counted(
        self: Placement, pos: int, octets: npt.NDArray[np.uint8], table: npt.NDArray[np.int16]
    ) -> None:
        calls.append(len(octets))
        original(self, pos, octets, table)

    monkeypatch.setattr(Placement, "place_octets", counted)
    yield calls


Pauses = list[tuple[float, bool]]


def record(
    legs: dict[int, Packets], codec: Codec, *, batched: bool, pauses: Pauses = (), sync_wait: float = 0.0
) -> tuple[npt.NDArray[np.int16], CallRecorder, list[object]]:
    """Frames, the recorder, and its statistics every 0.4 s along the way."""
    streams = [
        StreamSpec(index=i, channel=i, codec=codec, payload_type=0 if codec.name == "PCMU" else 8)
        for i in legs
    ]
    streams = [replace(spec, telephone_event_pt=TE_PT) for spec in streams]
    recorder = CallRecorder(streams=streams, channels=2, sync_wait=sync_wait)
    events = [(T0 + at, lambda now, paused=paused: recorder.set_paused(paused, now)) for at, paused in pauses]
    seen: list[object] = []
    events += [
        (T0 + 0.4 * k, lambda now: seen.append(recorder.snapshots())) for k in range(int(SECONDS / 0.4))
    ]
    frames = simulate(recorder, legs, start=T0, end=T0 + SECONDS + 1.0, events=events, batched=batched)
    return frames, recorder, seen


def both_ways(
    legs: dict[int, Packets], codec: Codec | None = None, *, pauses: Pauses = (), sync_wait: float = 0.0
) -> npt.NDArray[np.int16]:
    codec = codec or pcmu()
    listed, by_list, along_list = record(legs, codec, batched=False, pauses=pauses, sync_wait=sync_wait)
    batched, by_batch, along_batch = record(legs, codec, batched=True, pauses=pauses, sync_wait=sync_wait)
    assert along_batch == along_list
    assert listed.shape == batched.shape
    assert np.array_equal(listed, batched)
    assert by_batch.result() == by_list.result()
    assert by_batch.snapshots() == by_list.snapshots()
    assert all(stats.packets > 0 for stats in by_batch.snapshots()) and np.count_nonzero(batched)
    return batched


def call(
    imp: Impairments, seed: int = 1, encode: Callable[[npt.ArrayLike], bytes] = encode_ulaw, pt: int = 0
) -> dict[int, Packets]:
    rng = random.Random(seed)
    callee = replace(imp, seq0=(imp.seq0 + 7) & 0xFFFF, ts0=imp.ts0 * 3 & 0xFFFFFFFF)
    if not imp.outage_both:
        callee = replace(callee, outage=None)
    return {0: leg(0, imp, rng, encode, pt), 1: leg(1, callee, rng, encode, pt)}


def test_a_clean_call_is_placed_batch_by_batch(plain_batches: list[int]) -> None:
    frames = both_ways(call(Impairments(jitter=0.004)))
    packets = 2 * SECONDS / 0.02
    # Only the first batch of each leg (it anchors the stream) goes packet by packet, in the batched run.
    assert sum(plain_batches) >= packets - 2 * 10
    assert len(frames) == pytest.approx(SECONDS * 8000, abs=400)
    windows = frames[8000 : 8000 + 40 * 800].reshape(40, 800, 2)  # 100 ms each, both legs sound throughout
    assert (np.abs(windows).max(axis=1) > 5000).all()


IMPAIRMENTS = {
    "loss": Impairments(loss=0.05, jitter=0.01),
    "duplicates": Impairments(duplicate=0.05, jitter=0.01),
    "reordering": Impairments(reorder=0.05, jitter=0.02),
    "heavy jitter": Impairments(jitter=0.25),
    "late packets": Impairments(late=12, jitter=0.005),
    "SSRC change": Impairments(ssrc_change_at=2.5, jitter=0.005),
    "SSRC change, sequence kept": Impairments(ssrc_change_at=2.5, ssrc_only=True),
    "silence suppression": Impairments(suppressed=(2.05, 2.13)),
    "outage then burst": Impairments(outage=(2.3, 3.05)),
    "long outage then burst": Impairments(outage=(2.0, 3.6)),
    "long outage on both paths": Impairments(outage=(2.0, 3.3), outage_both=True),
    "odd payload lengths": Impairments(odd_every=17),
    "truncated payloads": Impairments(short_every=23, jitter=0.002),
    "header-only packets": Impairments(empty_at=2.0),
    "clock stepped back": Impairments(clock_step=3.0, jitter=0.002),
    "timestamp jump": Impairments(ts_jump_at=3.0),
    "DTX with comfort noise": Impairments(dtx=(2.0, 3.1), marker_every=0),
    "key press": Impairments(dtmf_at=1.5, jitter=0.003),
    "garbage": Impairments(garbage=40, jitter=0.003),
    "ptime change": Impairments(ptime_30_at=2.0),
    "markers": Impairments(marker_every=7),
    "sender reports": Impairments(reports=True, jitter=0.004),
    "wrap-around": Impairments(seq0=65_500, ts0=(1 << 32) - 7_200, jitter=0.003),
    "wrap-around with loss": Impairments(seq0=65_400, ts0=(1 << 32) - 30_000, loss=0.1),
}


@pytest.mark.parametrize("imp", IMPAIRMENTS.values(), ids=IMPAIRMENTS.keys())
def test_impaired_traffic_records_the_same_either_way(imp: Impairments) -> None:
    both_ways(call(imp))


def test_pauses_record_the_same_either_way(plain_batches: list[int]) -> None:
    both_ways(
        call(Impairments(jitter=0.004)), pauses=[(1.03, True), (2.51, False), (4.0, True), (4.5, False)]
    )
    assert plain_batches  # batches after the last resume are plain again


def test_alignment_waiting_for_reports_records_the_same_either_way() -> None:
    legs = call(Impairments(reports=True, jitter=0.004))
    legs[1] = [(arrival + 0.12, data) for arrival, data in legs[1]]  # the callee's path is slower
    both_ways(legs, sync_wait=2.0)


def test_pcma_is_placed_whole_too(plain_batches: list[int]) -> None:
    codec = codec_for("PCMA")
    assert codec is not None
    both_ways(call(Impairments(jitter=0.004, loss=0.01), encode=encode_alaw, pt=8), codec)
    assert plain_batches


@pytest.mark.parametrize("seed", range(6))
def test_everything_at_once_records_the_same_either_way(seed: int) -> None:
    rng = random.Random(seed)
    imp = Impairments(
        loss=rng.uniform(0, 0.05),
        duplicate=rng.uniform(0, 0.03),
        reorder=rng.uniform(0, 0.03),
        jitter=rng.uniform(0, 0.06),
        late=rng.randrange(4),
        garbage=rng.randrange(10),
        ssrc_change_at=rng.uniform(1, 5),
        dtmf_at=rng.uniform(0.5, 5),
        marker_every=rng.randrange(0, 50),
        reports=True,
        seq0=rng.randrange(1 << 16),
        ts0=rng.randrange(1 << 32),
    )
    both_ways(call(imp, seed=seed), pauses=[(rng.uniform(0.5, 2), True), (rng.uniform(2, 4), False)])


def test_a_wall_clock_stepped_back_between_reads_counts_the_same() -> None:
    """Kernel stamps follow the wall clock: after it steps back, a read's packets arrive "before" the last
    read's. A new source then still finds the current one recently heard (probation, RFC 3550 §6.2.1)."""
    codec = pcmu()
    first = [(T0 + 0.02 * i, rtp(10 + i, 160 * i, 0xA1, bytes([0x21]) * 160)) for i in range(50)]
    stepped = [
        (T0 + 0.5 + 0.02 * i, rtp(60 + i, 160 * (50 + i), 0xA1, bytes([0x22]) * 160)) for i in range(10)
    ]
    stranger = [
        (T0 + 0.85 + 0.02 * i, rtp(900 + i, 7_000 + 160 * i, 0xB2, bytes([0x23]) * 160)) for i in range(3)
    ]
    results = []
    for batched in (False, True):
        timeline = StreamTimeline(codec=codec, payload_type=0, origin=T0)
        for batch in (first[:10], first[10:], stepped, stranger):
            if batched:
                timeline.add_batch(DatagramBatch.of(batch))
            else:
                timeline.add(batch)
        results.append((timeline.stats.snapshot(), timeline.take(timeline.end_pos or 0)))
    (listed, audio), (batched_stats, batched_audio) = results
    assert batched_stats == listed
    assert np.array_equal(audio, batched_audio)
    assert listed.last_packet_at == T0 + 0.98  # the latest stamp seen, not the latest read's
    assert listed.ssrc == 0xA1 and listed.invalid == 3  # the stranger found the source heard "after" it


def test_a_batch_copies_its_datagrams_out_as_they_were() -> None:
    datagrams = [
        (T0, rtp(7, 1120, 0xCAFE, bytes(range(160)))),
        (T0 + 0.02, b"\x80"),
        (T0 + 0.04, bytes(MAX_DATAGRAM + 5)),  # kept whole; such a batch never takes the fast path
    ]
    batch = DatagramBatch.of(datagrams)
    assert batch.count == 3
    assert batch.datagrams() == datagrams
    assert list(batch.lengths) == [172, 1, MAX_DATAGRAM + 5]
    assert batch.arrivals == [T0, T0 + 0.02, T0 + 0.04]
    assert batch.headers()[:4] == (0x8000, 7, 1120, 0xCAFE)
    assert batch.payloads(160)[0].tobytes() == bytes(range(160))


def test_an_oversized_datagram_keeps_a_batch_off_the_fast_path(plain_batches: list[int]) -> None:
    size = MAX_DATAGRAM + 20  # otherwise plain: timestamps advance by the payload's length
    stream = [(T0 + i * size / 8000, rtp(100 + i, size * i, 0xAB, bytes([0x55]) * size)) for i in range(20)]
    codec = pcmu()
    outputs = []
    for batched in (False, True):
        recorder = CallRecorder(
            streams=[StreamSpec(index=0, channel=0, codec=codec, payload_type=0)], channels=1
        )
        frames = simulate(recorder, {0: stream}, start=T0, end=T0 + 6.0, batched=batched)
        outputs.append((frames, recorder.result()))
    assert np.array_equal(outputs[0][0], outputs[1][0]) and outputs[0][1] == outputs[1][1]
    assert not plain_batches


def test_a_drain_spanning_more_than_a_second_is_still_placed_whole(plain_batches: list[int]) -> None:
    """A pump that fell behind drains a second and more of packets at once: each is on time, so the batch is
    plain however far its first packet and its last arrival lie apart."""
    tone_octets = encode_ulaw(tone(440.0, 120 * 160))
    stream = [
        (T0 + 0.02 * i + 0.002 * (i % 3), rtp(100 + i, 160 * i, 0xAB, tone_octets[160 * i : 160 * (i + 1)]))
        for i in range(120)
    ]
    results = []
    for batched in (False, True):
        timeline = StreamTimeline(codec=pcmu(), payload_type=0, origin=T0)
        for chunk in (stream[:10], stream[10:70], stream[70:]):
            if batched:
                timeline.add_batch(DatagramBatch.of(chunk))
            else:
                timeline.add(chunk)
        results.append((timeline.stats.snapshot(), timeline.take(timeline.end_pos or 0)))
    assert results[0][0] == results[1][0]
    assert np.array_equal(results[0][1], results[1][1]) and len(results[1][1]) == 120 * 160
    assert plain_batches == [60, 50]
