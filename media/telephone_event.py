"""RFC 4733 telephone-event receiver: one key press per event, whatever the network did to its packets.

Sans-I/O, one per stream, fed the payload, RTP timestamp and marker bit of each telephone-event packet (the
caller has already matched the payload type). What senders do (RFC 4733 §2.5.1) and how this reads it:
- An event's packets share its RTP timestamp; the first has the marker bit, updates carry the duration so far,
  the last one has the E bit and is sent three times (§2.5.1.2, §2.5.1.4). One event is reported, at the first
  end packet; repeats and late updates of a finished event are ignored.
- A start packet may be lost: a packet with a newer timestamp starts an event, marker or not (§2.5.2).
- End packets may all be lost: a newer timestamp ends the event in progress with the duration last seen
  (§2.5.2), as does :meth:`TelephoneEventReceiver.expire` once the stream's clock has moved well past it, and
  :meth:`TelephoneEventReceiver.flush` at the end of the stream.
- An event longer than the 16-bit duration field goes on in a new segment whose timestamp is the previous one
  plus its duration, without the marker bit (§2.5.1.3); segments of one event are merged.
- Packets older than the newest timestamp seen are stragglers (reordered) and ignored, like repeats, counted in
  ``stale``; a timestamp far behind it with the marker bit means the sender's timestamps restarted.
  Timestamps compare modulo 2**32 (RFC 3550 §5.1).

Only DTMF events (codes 0-15, §3.2) are reported; other events (flash, line and modem events) are counted in
``ignored``. Payloads that are not a whole number of 4-octet event reports are counted in ``invalid``; of a longer
payload only the first report is read (RFC 2198 redundancy is not negotiated with this receiver).
"""

from __future__ import annotations

import struct

from media.dtmf import DIGITS, DtmfEvent, DtmfSource

__all__ = ["TelephoneEventReceiver"]

_REPORT = struct.Struct("!BBH")  # RFC 4733 §2.3: event, E|R|volume, duration
_END = 0x80
_VOLUME = 0x3F
_MAX_DURATION = 0xFFFF
_SEGMENT_SLACK = 0x2000  # a segment may end this short of 0xFFFF when its last updates were lost
_TS_MOD = 1 << 32
_TS_HALF = 1 << 31
_RESTART = 0x20000  # ticks behind the newest timestamp beyond which a marker packet is a timestamp restart


def _ahead(ts: int, ref: int) -> int:
    """How far ``ts`` is after ``ref`` modulo 2**32, negative if before (RFC 3550 §5.1 wrap-around)."""
    delta = (ts - ref) % _TS_MOD
    return delta - _TS_MOD if delta >= _TS_HALF else delta


class _Press:
    """The event in progress: its first timestamp, the current segment and what earlier segments lasted."""

    __slots__ = ("code", "earlier", "segment", "segment_duration", "start", "volume")

    def __init__(self, code: int, ts: int, duration: int, volume: int) -> None:
        self.code = code
        self.start = ts
        self.segment = ts
        self.segment_duration = duration
        self.earlier = 0
        self.volume = volume

    def event(self) -> DtmfEvent:
        return DtmfEvent(
            digit=DIGITS[self.code],
            source=DtmfSource.RFC4733,
            start=self.start,
            duration=self.earlier + self.segment_duration,
            volume=self.volume,
        )


class TelephoneEventReceiver:
    """Feed every telephone-event packet of one stream; get each key press once, when it has ended."""

    __slots__ = ("_last_code", "_newest", "_press", "ignored", "invalid", "stale")

    def __init__(self) -> None:
        self._press: _Press | None = None
        self._newest: int | None = None  # newest event timestamp seen
        self._last_code = -1  # event code at the newest timestamp
        self.invalid = 0  # malformed payloads
        self.ignored = 0  # well-formed reports of events other than DTMF
        self.stale = 0  # repeats and stragglers: behind the newest timestamp, or of an event already reported

    def feed(self, timestamp: int, payload: bytes, marker: bool) -> list[DtmfEvent]:
        """Events completed by this packet (at most two: one ended by a new timestamp, and this one)."""
        if not payload or len(payload) % 4:
            self.invalid += 1
            return []
        code, flags, duration = _REPORT.unpack_from(payload)
        timestamp %= _TS_MOD
        end = bool(flags & _END)
        events: list[DtmfEvent] = []
        press = self._press
        ahead = 1 if self._newest is None else _ahead(timestamp, self._newest)
        if code > 15:
            self.ignored += 1
            if ahead > 0:  # the sender moved on to another kind of event: a DTMF press in progress ended
                if press is not None:
                    events.append(press.event())
                    self._press = None
                self._newest, self._last_code = timestamp, code
            return events
        if ahead < 0 and not (marker and -ahead > _RESTART):
            self.stale += 1  # a straggler from an earlier event or segment (§2.5.2 reordering)
            return []
        if ahead == 0 and press is None and not (marker and code != self._last_code):
            self.stale += 1  # a repeated end packet (§2.5.1.4), or an update arriving after it
            return []
        if press is not None and ahead == 0:
            if code != press.code:
                self.invalid += 1  # §2.5.1.2: one event per timestamp
                return []
            press.segment_duration = max(press.segment_duration, duration)
        elif press is not None and self._continues(press, timestamp, code, marker):
            press.earlier += _ahead(timestamp, press.segment)
            press.segment = timestamp
            press.segment_duration = duration
        else:
            if press is not None:  # a new event before this one's end packet: it ended (§2.5.2)
                events.append(press.event())
            press = self._press = _Press(code, timestamp, duration, flags & _VOLUME)
        press.volume = flags & _VOLUME
        self._newest, self._last_code = timestamp, code
        if end:
            events.append(press.event())
            self._press = None
        return events

    def started(self) -> DtmfEvent | None:
        """The key held down now (duration so far), or None: react to a press before it ends.

        ``start`` identifies the press; :meth:`feed` later reports it once more, complete.
        """
        return None if self._press is None else self._press.event()

    def expire(self, timestamp: int, after: int) -> list[DtmfEvent]:
        """The stream's clock has reached ``timestamp`` (e.g. an audio packet's): end the press in progress if
        that is more than ``after`` ticks past the end its last update reported (its end packets were lost)."""
        press = self._press
        if press is None:
            return []
        if _ahead(timestamp, press.segment) - press.segment_duration <= after:
            return []
        self._press = None
        return [press.event()]

    def flush(self) -> list[DtmfEvent]:
        """End of stream: the press whose end packets never came, if any."""
        press, self._press = self._press, None
        return [] if press is None else [press.event()]

    @staticmethod
    def _continues(press: _Press, timestamp: int, code: int, marker: bool) -> bool:
        """A new segment of a long event (§2.5.1.3): same event, no marker, right after a full segment."""
        step = _ahead(timestamp, press.segment)
        return (
            code == press.code
            and not marker
            and press.segment_duration >= _MAX_DURATION - _SEGMENT_SLACK
            and press.segment_duration <= step <= _MAX_DURATION + 1
        )
