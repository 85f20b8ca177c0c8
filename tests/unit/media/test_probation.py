"""Source probation: two packets in sequence, and a quiet current source, before a new SSRC is recorded."""

from __future__ import annotations

from media.probation import MAX_CANDIDATES, MAX_HELD, QUIET, Probation
from media.rtp import RtpHeader, parse_rtp
from tests.unit.media.helpers import T0, rtp


def packet(seq: int, ssrc: int = 0xB0B) -> tuple[bytes, RtpHeader]:
    data = rtp(seq, seq * 160, ssrc, b"\xff" * 160)
    header = parse_rtp(data)
    assert header is not None
    return data, header


def test_first_source_is_proven_by_its_second_packet() -> None:
    probation = Probation()
    first, second = packet(100), packet(101)
    assert probation.offer(T0, *first, None) == []
    assert probation.pending == 1
    proven = probation.offer(T0 + 0.02, *second, None)
    assert proven == [(T0, *first), (T0 + 0.02, *second)]
    assert probation.pending == 0


def test_reordered_or_lossy_start_still_proves_the_source() -> None:
    probation = Probation()
    assert probation.offer(T0, *packet(7), None) == []
    assert len(probation.offer(T0 + 0.03, *packet(5), None)) == 2  # two behind: reordered
    assert probation.offer(T0, *packet(65530), None) == []
    assert len(probation.offer(T0 + 0.1, *packet(3), None)) == 2  # nine ahead across the wrap: lost ones


def test_random_ssrcs_or_far_sequence_numbers_never_prove_anything() -> None:
    probation = Probation()
    for i in range(200):
        assert probation.offer(T0 + i * 0.001, *packet(i * 7919 % 65536, ssrc=0x1000 + i), None) == []
    assert probation.offer(T0 + 1, *packet(1000), None) == []
    assert probation.offer(T0 + 1.02, *packet(1000 + 17), None) == []  # 17 apart: a different candidate
    assert probation.offer(T0 + 1.04, *packet(1017), None) == []  # a repeat of the same number
    assert probation.pending == (MAX_CANDIDATES - 1) + 3  # the latest candidates, 0xB0B with all three


def test_forged_packets_of_the_candidate_ssrc_do_not_cost_the_real_ones() -> None:
    probation = Probation()
    assert probation.offer(T0, *packet(30_000), None) == []  # forged: the right SSRC, a random number
    assert probation.offer(T0 + 0.001, *packet(100), None) == []  # the real first packet
    assert probation.offer(T0 + 0.002, *packet(51_234), None) == []  # forged again
    proven = probation.offer(T0 + 0.02, *packet(101), None)
    assert [h.sequence for _, _, h in proven] == [100, 101]


def test_garbage_between_the_first_two_packets_loses_nothing() -> None:
    probation = Probation()
    assert probation.offer(T0, *packet(500), None) == []
    for i in range(MAX_CANDIDATES - 1):
        assert probation.offer(T0 + 0.001 * i, *packet(i, ssrc=0xBAD0 + i), None) == []
    proven = probation.offer(T0 + 0.02, *packet(501), None)
    assert [h.sequence for _, _, h in proven] == [500, 501]
    assert probation.pending == 0  # the other candidates are dropped with it


def test_a_new_source_waits_until_the_current_one_is_quiet() -> None:
    probation = Probation()
    current_seen = T0
    assert probation.offer(T0 + 0.01, *packet(1), current_seen) == []
    assert probation.offer(T0 + 0.03, *packet(2), current_seen) == []  # the current source spoke 30 ms ago
    proven = probation.offer(T0 + QUIET + 0.01, *packet(3), current_seen)
    assert [h.sequence for _, _, h in proven] == [1, 2, 3]


def test_a_long_wait_keeps_only_the_latest_packets() -> None:
    probation = Probation()
    for i in range(MAX_HELD + 10):
        assert probation.offer(T0 + i * 0.02, *packet(i), T0 + i * 0.02) == []
    assert probation.pending == MAX_HELD
    proven = probation.offer(T0 + 10, *packet(MAX_HELD + 10), T0)
    assert len(proven) == MAX_HELD
    assert proven[0][2].sequence == 11
