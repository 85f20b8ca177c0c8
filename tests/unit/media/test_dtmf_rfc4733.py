"""RFC 4733 telephone-event reception: one key press per event, whatever the network did to its packets.

Packets are real RTP datagrams (payload type 101, 8000 Hz event clock) shaped like pjsua's and Asterisk's: a start
packet with the marker bit, an update every 50 ms carrying the duration so far, three end packets with the E bit
and the final duration; audio packets keep flowing in between (their timestamps are what ``expire`` is fed).
"""

from __future__ import annotations

import random
import struct
from typing import Any

import pytest

from media.dtmf import DtmfEvent, DtmfSource
from media.rtp import parse_rtp
from media.telephone_event import TelephoneEventReceiver
from tests.unit.media.helpers import rtp, telephone_event

SSRC = 0x5EC0DE01
PT = 101
UPDATE = 400  # ticks between updates: 50 ms at 8000 Hz


class Sender:
    """The SRC's telephone-event sender: RTP datagrams with running sequence numbers."""

    def __init__(self, seq: int = 20_000) -> None:
        self.seq = seq

    def packet(self, ts: int, payload: bytes, *, marker: bool = False) -> bytes:
        self.seq = (self.seq + 1) & 0xFFFF
        return rtp(self.seq, ts, SSRC, payload, pt=PT, marker=marker)

    def press(self, code: int, ts: int, duration: int, *, volume: int = 10) -> list[bytes]:
        """One key press lasting ``duration`` ticks: start, updates every 50 ms, three end packets."""
        packets = [self.packet(ts, telephone_event(code, end=False, volume=volume, duration=0), marker=True)]
        packets += [
            self.packet(ts, telephone_event(code, end=False, volume=volume, duration=d))
            for d in range(UPDATE, duration, UPDATE)
        ]
        final = telephone_event(code, end=True, volume=volume, duration=duration)
        return packets + [self.packet(ts, final) for _ in range(3)]


def receive(receiver: TelephoneEventReceiver, datagrams: list[bytes]) -> list[DtmfEvent]:
    """What the stream's timeline does with each telephone-event datagram."""
    events: list[DtmfEvent] = []
    for data in datagrams:
        header = parse_rtp(data)
        assert header is not None and header.payload_type == PT
        payload = data[header.payload_offset : header.payload_offset + header.payload_length]
        events += receiver.feed(header.timestamp, payload, header.marker)
    return events


def event(digit: str, start: int, duration: int, volume: int = 10) -> DtmfEvent:
    return DtmfEvent(digit=digit, source=DtmfSource.RFC4733, start=start, duration=duration, volume=volume)


def keyed(number: str, ts0: int, sender: Sender, *, hold: int = 800, gap: int = 1200) -> list[list[bytes]]:
    """A number typed on a keypad: one press per digit, ``gap`` ticks apart."""
    code = {d: i for i, d in enumerate("0123456789*#ABCD")}
    return [sender.press(code[d], (ts0 + i * (hold + gap)) & 0xFFFFFFFF, hold) for i, d in enumerate(number)]


def test_one_press_is_one_event_at_its_first_end_packet() -> None:
    receiver = TelephoneEventReceiver()
    packets = Sender().press(5, 160_000, 1040, volume=12)  # a 130 ms press
    assert len(packets) == 6
    assert receive(receiver, packets[:3]) == []
    assert receive(receiver, packets[3:4]) == [event("5", 160_000, 1040, 12)]
    assert receive(receiver, packets[4:]) == []  # the two repeats of the end packet
    assert receiver.flush() == []
    assert (receiver.invalid, receiver.ignored, receiver.stale) == (0, 0, 2)


def test_a_typed_number_comes_out_digit_by_digit() -> None:
    receiver = TelephoneEventReceiver()
    presses = keyed("06301234567*#", 48_000, Sender())
    events = receive(receiver, [p for press in presses for p in press])
    assert "".join(e.digit or "" for e in events) == "06301234567*#"
    assert [e.start for e in events] == [48_000 + i * 2000 for i in range(13)]
    assert {e.duration for e in events} == {800}
    assert receiver.stale == 2 * 13


def test_started_reports_the_key_down_before_it_is_released() -> None:
    receiver = TelephoneEventReceiver()
    packets = Sender().press(1, 90_000, 2400)  # "press 1 to agree", held 300 ms
    assert receiver.started() is None
    receive(receiver, packets[:1])
    assert receiver.started() == event("1", 90_000, 0)
    receive(receiver, packets[1:3])
    assert receiver.started() == event("1", 90_000, 800)
    done = receive(receiver, packets[3:])
    assert done == [event("1", 90_000, 2400)]
    assert receiver.started() is None


def test_a_lost_start_packet_still_gives_the_press() -> None:
    receiver = TelephoneEventReceiver()
    first, second = keyed("42", 1_000, Sender())
    events = receive(receiver, first[1:] + second[2:])  # no marker packet for either; the second lost two
    assert events == [event("4", 1_000, 800), event("2", 3_000, 800)]


def test_only_end_packets_received_still_give_the_press() -> None:
    receiver = TelephoneEventReceiver()
    packets = Sender().press(9, 7_000, 1600)
    assert receive(receiver, packets[-3:]) == [event("9", 7_000, 1600)]


def test_lost_end_packets_end_the_press_at_the_next_one_or_at_flush() -> None:
    receiver = TelephoneEventReceiver()
    first, second = keyed("78", 500, Sender(), hold=1200)
    assert receive(receiver, first[:-3]) == []  # every end packet of "7" lost
    assert receive(receiver, second[:1]) == [event("7", 500, 800)]  # ended: the last update said 800
    assert receive(receiver, second[1:-3]) == []
    assert receiver.flush() == [event("8", 2_900, 800)]  # the call ended before "8"'s end packets came
    assert receiver.flush() == []


def test_expire_ends_a_press_once_the_audio_clock_is_well_past_it() -> None:
    receiver = TelephoneEventReceiver()
    packets = Sender().press(0, 80_000, 1200)
    receive(receiver, packets[:-3])  # last update: duration 800; the end packets are lost
    assert receiver.expire(80_000 + 800 + 1200, after=1200) == []  # 150 ms past: an update may still come
    assert receiver.expire(80_000 + 800 + 1360, after=1200) == [event("0", 80_000, 800)]
    assert receiver.started() is None
    assert receive(receiver, packets[-3:]) == []  # late end packets of a press already reported
    assert receiver.expire(200_000, after=1200) == []


def test_reordered_packets_give_the_same_events() -> None:
    sender = Sender()
    first, second = keyed("31", 10_000, sender, hold=2000, gap=400)
    # Updates overtake each other and the start; an end packet of "3" arrives after "1" has started.
    shuffled = [
        first[2],
        first[0],
        first[1],
        first[4],
        first[3],
        first[5],
        second[0],
        *first[6:],
        *second[1:],
    ]
    receiver = TelephoneEventReceiver()
    assert receive(receiver, shuffled) == [event("3", 10_000, 2000), event("1", 12_400, 2000)]
    assert (
        receiver.stale == 2 + 2
    )  # the repeats of "3"'s end packet, arriving after "1" started, and of "1"'s


def test_updates_after_the_end_do_not_shorten_or_repeat_the_press() -> None:
    sender = Sender()
    packets = sender.press(6, 4_000, 1200)
    receiver = TelephoneEventReceiver()
    assert receive(receiver, [packets[0], packets[3], packets[1], packets[2]]) == [event("6", 4_000, 1200)]
    assert receiver.flush() == []


def test_a_late_update_does_not_shorten_the_press_in_progress() -> None:
    packets = Sender().press(2, 9_000, 1600)  # start, 400, 800, 1200, end x 3
    receiver = TelephoneEventReceiver()
    receive(receiver, [packets[0], packets[1], packets[3], packets[2]])
    assert receiver.started() == event("2", 9_000, 1200)
    assert receiver.flush() == [event("2", 9_000, 1200)]  # every end packet lost


def test_duplicated_packets_give_the_same_events() -> None:
    presses = keyed("2580", 33_000, Sender())
    datagrams = [p for press in presses for p in press for _ in range(2)]
    receiver = TelephoneEventReceiver()
    assert [e.digit for e in receive(receiver, datagrams)] == ["2", "5", "8", "0"]
    assert receiver.flush() == []


def test_timestamps_wrap_around_32_bits() -> None:
    presses = keyed("1234", 0xFFFFFFFF - 2_500, Sender())
    receiver = TelephoneEventReceiver()
    events = receive(receiver, [p for press in presses for p in press])
    assert [(e.digit, e.start) for e in events] == [
        ("1", 0xFFFFFFFF - 2_500),
        ("2", 0xFFFFFFFF - 500),
        ("3", 1_499),
        ("4", 3_499),
    ]
    # A straggler from before the wrap is recognised as old, not as a new press far in the future.
    late = Sender().packet(0xFFFFFFFF - 500, telephone_event(2, end=True, duration=800))
    assert receive(receiver, [late]) == []


def test_a_press_longer_than_the_duration_field_is_one_event() -> None:
    """RFC 4733 §2.5.1.3: at 0xFFFF ticks the sender starts a new segment at timestamp + 0xFFFF, no marker."""
    sender = Sender()
    ts = 0xFFFFFFFF - 30_000  # the second segment's timestamp wraps too
    first = [sender.packet(ts, telephone_event(11, end=False, duration=0), marker=True)]
    first += [sender.packet(ts, telephone_event(11, end=False, duration=d)) for d in range(400, 0xFFFF, 400)]
    first.append(sender.packet(ts, telephone_event(11, end=False, duration=0xFFFF)))
    ts2 = (ts + 0xFFFF) & 0xFFFFFFFF
    second = [sender.packet(ts2, telephone_event(11, end=False, duration=d)) for d in range(400, 14_465, 400)]
    second += [sender.packet(ts2, telephone_event(11, end=True, duration=14_465)) for _ in range(3)]
    receiver = TelephoneEventReceiver()
    assert receive(receiver, first[:-1]) == []  # the segment's last packet (duration 0xFFFF) is lost
    assert receiver.started() == event("#", ts, 65_200)
    assert receive(receiver, second[:5]) == []
    assert receiver.started() == event("#", ts, 0xFFFF + 2000)
    assert receive(receiver, [first[-1], *second[5:]]) == [event("#", ts, 80_000)]  # 10 s


def test_a_new_press_of_the_same_key_is_not_taken_for_a_segment() -> None:
    sender = Sender()
    first = sender.press(3, 50_000, 800)
    second = sender.press(3, 50_000 + 2_000, 800)
    receiver = TelephoneEventReceiver()
    assert receive(receiver, first[:-3] + second) == [event("3", 50_000, 400), event("3", 52_000, 800)]


def test_events_other_than_dtmf_are_ignored() -> None:
    sender = Sender()
    flash = sender.press(16, 5_000, 4000)  # hook flash (RFC 4733 §3.2)
    line = [sender.packet(9_000, telephone_event(70, end=True, duration=800))]  # a line event (RFC 4734)
    receiver = TelephoneEventReceiver()
    digits = keyed("5", 20_000, sender)[0]
    assert receive(receiver, flash + line + digits) == [event("5", 20_000, 800)]
    assert receiver.ignored == 13 + 1  # the flash's start, 9 updates and 3 end packets; the line event
    assert (receiver.invalid, receiver.stale) == (0, 2)


def test_a_new_timestamp_of_another_event_ends_the_press_in_progress() -> None:
    sender = Sender()
    press = sender.press(8, 1_000, 1200)[:-3]
    flash = sender.press(16, 3_000, 800)
    receiver = TelephoneEventReceiver()
    assert receive(receiver, press + flash) == [event("8", 1_000, 800)]


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x05",
        b"\x05\x8a\x03",  # truncated report
        b"\x05\x8a\x03\x20\x00",  # five octets
        b"\x05\x8a\x03\x20\x05\x8a",
        b"\x05\x8a\x03\x20\x05\x8a\x03",
    ],
)
def test_malformed_payloads_are_counted_and_change_nothing(payload: bytes) -> None:
    sender = Sender()
    presses = keyed("12", 2_000, sender)
    garbage = sender.packet(2_000 + 400, payload)
    receiver = TelephoneEventReceiver()
    events = receive(receiver, presses[0][:2] + [garbage] + presses[0][2:] + presses[1])
    assert events == [event("1", 2_000, 800), event("2", 4_000, 800)]
    assert receiver.invalid == 1


def test_a_payload_of_several_reports_is_read_by_its_first() -> None:
    receiver = TelephoneEventReceiver()
    payload = telephone_event(7, end=True, duration=960) + telephone_event(4, end=True, duration=400)
    assert receiver.feed(3_000, payload, True) == [event("7", 3_000, 960)]
    assert receiver.invalid == 0


def test_one_timestamp_with_two_event_codes_is_invalid() -> None:
    receiver = TelephoneEventReceiver()
    receiver.feed(3_000, telephone_event(7, end=False, duration=0), True)
    assert receiver.feed(3_000, telephone_event(4, end=False, duration=400), False) == []
    assert receiver.invalid == 1
    assert receiver.feed(3_000, telephone_event(7, end=True, duration=800), False) == [event("7", 3_000, 800)]


def test_a_sender_reusing_the_timestamp_for_the_next_key_is_understood() -> None:
    """Some gateways stamp events from an audio clock that stops while no audio is sent."""
    receiver = TelephoneEventReceiver()
    assert receiver.feed(6_000, telephone_event(1, end=True, duration=640), False) == [event("1", 6_000, 640)]
    assert receiver.feed(6_000, telephone_event(2, end=False, duration=0), True) == []
    assert receiver.feed(6_000, telephone_event(2, end=True, duration=640), False) == [event("2", 6_000, 640)]


def test_a_timestamp_restart_starts_over() -> None:
    sender = Sender()
    receiver = TelephoneEventReceiver()
    before = sender.press(1, 3_000_000, 800)
    after = sender.press(2, 1_000, 800)  # e.g. a new SSRC after a transfer: timestamps restart
    assert receive(receiver, before + after) == [event("1", 3_000_000, 800), event("2", 1_000, 800)]


def test_volume_is_the_last_reported() -> None:
    receiver = TelephoneEventReceiver()
    receiver.feed(100, struct.pack("!BBH", 0, 20, 0), True)
    assert receiver.feed(100, struct.pack("!BBH", 0, 0x80 | 0x40 | 7, 800), False) == [
        event("0", 100, 800, 7)  # the reserved R bit (0x40) is ignored
    ]


def test_garbage_never_raises() -> None:
    rng = random.Random(4733)
    receiver = TelephoneEventReceiver()
    for _ in range(20_000):
        payload = rng.randbytes(rng.choice((0, 1, 3, 4, 4, 4, 8, 12, 160)))
        for e in receiver.feed(rng.getrandbits(32), payload, rng.random() < 0.3):
            assert e.digit is not None and e.source is DtmfSource.RFC4733
            assert 0 <= e.start < 1 << 32 and e.duration >= 0 and e.volume is not None
        receiver.started()
        receiver.expire(rng.getrandbits(32), after=1200)
    receiver.flush()
    assert receiver.invalid > 0 and receiver.ignored > 0


def test_masked_event_keeps_its_timing() -> None:
    press = event("4", 12_000, 960, 9)
    masked = press.masked()
    assert masked == DtmfEvent(digit=None, source=DtmfSource.RFC4733, start=12_000, duration=960, volume=9)
    assert masked.masked() == masked


@pytest.mark.parametrize(
    "fields",
    [
        {"digit": "E", "start": 0, "duration": 0},
        {"digit": "12", "start": 0, "duration": 0},
        {"digit": "", "start": 0, "duration": 0},
        {"digit": "1", "start": -1, "duration": 0},
        {"digit": "1", "start": 0, "duration": -5},
        {"digit": "1", "start": 0, "duration": 0, "volume": 64},
    ],
)
def test_events_are_validated(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        DtmfEvent(source=DtmfSource.RFC4733, **fields)
