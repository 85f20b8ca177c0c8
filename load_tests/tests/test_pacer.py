"""RTP legs sent by the pacer over real loopback sockets, with time set by hand: what goes on the wire."""

from __future__ import annotations

import itertools
import random
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from aiortc.rtp import RtcpPacket, RtcpSrPacket

from load_tests.loadgen import Codec, Impairments, LegImpairer, Pacer, RtpLeg, encoded_frames

TICK = 0.020


@dataclass(frozen=True)
class Received:
    at: float  # the tick that sent it
    seq: int
    ts: int
    ssrc: int
    marker: bool
    payload_type: int
    payload: bytes


_OPEN: list[RtpLeg] = []


@pytest.fixture(autouse=True)
def _close_legs() -> Iterator[None]:
    yield
    while _OPEN:
        leg = _OPEN.pop()
        if not leg.closed:
            leg.close()


@pytest.fixture
def sink() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    yield sock
    sock.close()


def _leg(
    total: int,
    impairments: Impairments | None = None,
    change_at: int | None = None,
    seed: int = 3,
    sock: socket.socket | None = None,
) -> RtpLeg:
    rng = random.Random(seed)
    leg = RtpLeg(
        label="1",
        frequency=440,
        frames=encoded_frames(Codec.PCMU, 440),
        payload_type=0,
        total=total,
        change_at=change_at,
        impairer=None,
        rng=rng,
        local_host="127.0.0.1",
        sock=sock,
        delay_ms=impairments.delay_ms if impairments else 0.0,
        jitter_ms=impairments.jitter_ms if impairments else 0.0,
    )
    if impairments is not None:
        leg.impairer = LegImpairer(impairments, protected=leg.protected(), rng=rng)
    _OPEN.append(leg)
    return leg


def _drain(sock: socket.socket, at: float, into: list[Received]) -> None:
    while True:
        try:
            data = sock.recv(2048)
        except BlockingIOError:
            return
        first, second, seq, ts, ssrc = struct.unpack("!BBHII", data[:12])
        assert first == 0x80
        into.append(Received(at, seq, ts, ssrc, bool(second & 0x80), second & 0x7F, data[12:]))


def _run(
    pacer: Pacer, sink: socket.socket, until: float, start: float = 0.0
) -> tuple[list[Received], list[float]]:
    """Tick every 20 ms from ``start`` to ``until``; what arrived, and when legs finished."""
    received: list[Received] = []
    finished: list[float] = []
    steps = round((until - start) / TICK)
    for step in range(steps + 1):
        now = start + step * TICK
        finished += [now for _ in pacer.tick(now)]
        _drain(sink, now, received)
    return received, finished


def _ext(packets: list[Received]) -> list[int]:
    """Sequence numbers relative to the first one sent (wrap-safe)."""
    base = packets[0].seq
    return [(p.seq - base) & 0xFFFF for p in packets]


def test_an_unimpaired_leg_sends_every_packet_on_time_and_in_order(sink: socket.socket) -> None:
    pacer = Pacer()
    leg = _leg(total=50)
    pacer.add(leg, sink.getsockname(), start=0.0)
    received, finished = _run(pacer, sink, until=1.2)
    assert len(received) == 50
    assert _ext(received) == list(range(50))
    assert [(p.ts - received[0].ts) & 0xFFFFFFFF for p in received] == [160 * n for n in range(50)]
    assert [p.at for p in received] == pytest.approx([n * TICK for n in range(50)])
    assert [p.marker for p in received] == [True] + [False] * 49
    assert {p.ssrc for p in received} == {received[0].ssrc}
    assert {p.payload_type for p in received} == {0}
    frames = encoded_frames(Codec.PCMU, 440)
    assert [p.payload for p in received] == [frames[n % 50] for n in range(50)]
    assert finished == pytest.approx([0.98])
    result = leg.result()
    assert (result.sent, result.packets, result.dropped) == (50, 50, 0)
    assert result.first_sent_at == 0.0 and result.last_sent_at == pytest.approx(0.98)
    assert result.source == f"127.0.0.1:{leg.local_port}"


def test_a_late_tick_sends_everything_that_fell_due(sink: socket.socket) -> None:
    pacer = Pacer()
    pacer.add(_leg(total=100), sink.getsockname(), start=0.0)
    pacer.tick(0.0)
    pacer.tick(0.5)  # the loop stalled for half a second
    received: list[Received] = []
    _drain(sink, 0.5, received)
    assert _ext(received) == list(range(26))


def test_loss_keeps_the_first_two_and_last_and_counts_the_longest_run(sink: socket.socket) -> None:
    pacer = Pacer()
    leg = _leg(total=400, impairments=Impairments(loss=20.0))
    pacer.add(leg, sink.getsockname(), start=0.0)
    received, _ = _run(pacer, sink, until=8.5)
    seqs = _ext(received)
    assert seqs == sorted(seqs)
    assert seqs[:2] == [0, 1] and seqs[-1] == 399
    result = leg.result()
    assert len(received) == result.sent == 400 - result.dropped
    assert 40 < result.dropped < 120
    gaps = [b - a - 1 for a, b in itertools.pairwise(seqs)]
    assert max(gaps) == result.longest_loss_run >= 2


def test_jitter_above_the_packet_time_reorders_but_loses_nothing(sink: socket.socket) -> None:
    pacer = Pacer()
    leg = _leg(total=300, impairments=Impairments(jitter_ms=50.0))
    pacer.add(leg, sink.getsockname(), start=0.0)
    received, finished = _run(pacer, sink, until=6.2)
    seqs = _ext(received)
    assert sorted(seqs) == list(range(300))
    assert seqs != sorted(seqs)
    for packet, n in zip(received, seqs, strict=True):
        assert n * TICK <= packet.at <= n * TICK + 0.050 + TICK + 1e-9
    assert finished and finished[0] >= 299 * TICK


def test_constant_delay_shifts_every_packet(sink: socket.socket) -> None:
    pacer = Pacer()
    leg = _leg(total=60, impairments=Impairments(delay_ms=200.0))
    pacer.add(leg, sink.getsockname(), start=0.0)
    received, finished = _run(pacer, sink, until=1.6)
    assert _ext(received) == list(range(60))
    for n, packet in enumerate(received):  # sent on the first tick at or after its due time
        assert n * TICK + 0.2 - 1e-9 <= packet.at <= n * TICK + 0.2 + TICK + 1e-9
    assert finished == [received[-1].at]


def test_duplicates_follow_their_original(sink: socket.socket) -> None:
    pacer = Pacer()
    leg = _leg(total=500, impairments=Impairments(duplicate=10.0))
    pacer.add(leg, sink.getsockname(), start=0.0)
    received, _ = _run(pacer, sink, until=10.2)
    seqs = _ext(received)
    repeats = [n for previous, n in itertools.pairwise(seqs) if n == previous]
    assert len(repeats) == leg.result().duplicated > 20
    assert sorted(set(seqs)) == list(range(500))
    assert leg.result().sent == 500 + len(repeats)


def test_an_explicitly_reordered_packet_arrives_right_after_its_successor(sink: socket.socket) -> None:
    pacer = Pacer()
    leg = _leg(total=500, impairments=Impairments(reorder=5.0))
    pacer.add(leg, sink.getsockname(), start=0.0)
    received, _ = _run(pacer, sink, until=10.2)
    seqs = _ext(received)
    swapped = [a for a, b in itertools.pairwise(seqs) if b == a - 1]
    assert len(swapped) == leg.result().reordered > 10
    assert sorted(seqs) == list(range(500))


def test_an_ssrc_change_starts_a_new_source_with_new_bases(sink: socket.socket) -> None:
    pacer = Pacer()
    leg = _leg(total=100, change_at=50)
    pacer.add(leg, sink.getsockname(), start=0.0)
    received, _ = _run(pacer, sink, until=2.1)
    first, second = received[:50], received[50:]
    assert len({p.ssrc for p in first}) == len({p.ssrc for p in second}) == 1
    assert first[0].ssrc != second[0].ssrc
    assert [p.marker for p in received].count(True) == 2 and second[0].marker
    assert _ext(second) == list(range(50))
    assert [(p.ts - second[0].ts) & 0xFFFFFFFF for p in second] == [160 * n for n in range(50)]
    assert (second[0].seq - first[-1].seq) & 0xFFFF != 1 or second[0].ts != first[-1].ts + 160
    assert leg.result().ssrcs == (first[0].ssrc, second[0].ssrc)


@pytest.fixture
def rtp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """An RTP socket on an even port and an RTCP socket on the next one (RFC 3550 §11)."""
    for _ in range(100):
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        try:
            rtcp.bind(("127.0.0.1", rtp.getsockname()[1] + 1))
        except OSError:
            rtp.close()
            rtcp.close()
            continue
        rtp.setblocking(False)
        rtcp.setblocking(False)
        yield rtp, rtcp
        rtp.close()
        rtcp.close()
        return
    raise RuntimeError("no free port pair")


def _reports(
    leg: RtpLeg, pair: tuple[socket.socket, socket.socket], until: float
) -> list[tuple[float, RtcpSrPacket]]:
    rtp, rtcp = pair
    pacer = Pacer()
    pacer.add(leg, rtp.getsockname(), start=0.0)
    reports: list[tuple[float, RtcpSrPacket]] = []
    for step in range(round(until / TICK) + 1):
        now = step * TICK
        pacer.tick(now)
        _drain(rtp, now, [])
        try:
            [packet] = RtcpPacket.parse(rtcp.recv(2048))
        except BlockingIOError:
            continue
        assert isinstance(packet, RtcpSrPacket)
        reports.append((now, packet))
    return reports


def test_sender_reports_go_to_the_next_port_every_five_seconds(
    rtp_pair: tuple[socket.socket, socket.socket],
) -> None:
    leg = _leg(total=650)
    reports = _reports(leg, rtp_pair, until=13.0)
    assert [at for at, _ in reports] == pytest.approx([2.5, 7.5, 12.5])
    assert {packet.ssrc for _, packet in reports} == {leg.result().ssrcs[0]}
    assert [packet.sender_info.packet_count for _, packet in reports] == [126, 376, 626]
    assert [packet.sender_info.octet_count for _, packet in reports] == [126 * 160, 376 * 160, 626 * 160]
    assert leg.result().rtcp_sent == 3
    # RFC 3550 §6.4.1: each report maps one instant to both clocks, so the mapping never wobbles.
    ntps = [packet.sender_info.ntp_timestamp / 2**32 for _, packet in reports]
    stamps = [packet.sender_info.rtp_timestamp for _, packet in reports]
    assert [b - a for a, b in itertools.pairwise(ntps)] == pytest.approx([5.0, 5.0], abs=1e-6)
    assert [(b - a) & 0xFFFFFFFF for a, b in itertools.pairwise(stamps)] == [40000, 40000]


def test_a_delayed_path_delays_the_reports_too(rtp_pair: tuple[socket.socket, socket.socket]) -> None:
    plain, delayed = _leg(total=400, seed=4), _leg(total=400, impairments=Impairments(delay_ms=200.0), seed=4)
    on_time = _reports(plain, rtp_pair, until=3.0)
    late = _reports(delayed, rtp_pair, until=3.0)
    assert [at for at, _ in on_time] == pytest.approx([2.5])
    assert [at for at, _ in late] == pytest.approx([2.7])
    # what it says is what the source's clock said when it was made, not when it arrived
    assert late[0][1].sender_info.rtp_timestamp == on_time[0][1].sender_info.rtp_timestamp
    assert late[0][1].sender_info.ntp_timestamp - on_time[0][1].sender_info.ntp_timestamp == pytest.approx(
        0, abs=2**32 * 0.001
    )


def test_the_fast_lane_sends_exactly_the_packets_a_leg_builds(sink: socket.socket) -> None:
    shared = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    shared.bind(("127.0.0.1", 0))
    shared.setblocking(False)
    try:
        pacer = Pacer()
        legs = [_leg(total=60, change_at=30, seed=1, sock=shared), _leg(total=45, seed=2, sock=shared)]
        for leg in legs:
            pacer.add(leg, sink.getsockname(), start=0.0)
        got: list[tuple[bytes, tuple[str, int]]] = []
        for step in range(round(1.4 / TICK) + 1):
            pacer.tick(step * TICK)
            while True:
                try:
                    got.append(sink.recvfrom(2048))
                except BlockingIOError:
                    break
        assert {address for _, address in got} == {shared.getsockname()}
        for leg in legs:
            ssrcs = {ssrc for ssrc, _, _ in leg.sources}
            mine = [data for data, _ in got if struct.unpack_from("!I", data, 8)[0] in ssrcs]
            assert mine == [leg.packet(n) for n in range(leg.total)]
            assert leg.sent == leg.total and leg.next_n == leg.total
            assert leg.last_sent_at == pytest.approx((leg.total - 1) * TICK)
        assert pacer.sent == 105 and pacer.legs == 0
    finally:
        for leg in legs:
            leg.close()
        shared.close()


def test_a_removed_leg_stops_at_once_and_keeps_its_counts(sink: socket.socket) -> None:
    pacer = Pacer()
    leg = _leg(total=100)
    pacer.add(leg, sink.getsockname(), start=0.0)
    received, _ = _run(pacer, sink, until=0.3)
    pacer.remove(leg)
    later, finished = _run(pacer, sink, until=1.0, start=0.32)
    assert len(received) == 16 and later == [] and finished == []
    assert leg.sent == 16 and leg.next_n == 16 and pacer.legs == 0


def test_a_closed_leg_sends_nothing_more(sink: socket.socket) -> None:
    pacer = Pacer()
    leg = _leg(total=100, impairments=Impairments(delay_ms=100.0))
    pacer.add(leg, sink.getsockname(), start=0.0)
    received, _ = _run(pacer, sink, until=0.5)
    pacer.remove(leg)
    leg.close()
    later, finished = _run(pacer, sink, until=3.0, start=0.52)
    assert len(received) == 21 and later == [] and finished == []
    assert pacer.legs == 0
