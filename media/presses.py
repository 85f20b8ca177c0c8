"""Key presses on a call's timeline, whichever way they came: value objects and in-band detection (sans-I/O).

A stream's SDP decides how its keys arrive, and so how they are found, never both ways for one stream:
- with telephone-event negotiated, as RFC 4733 events, which :class:`media.timeline.StreamTimeline` places
  (a press is known from its first packet: the key-down time);
- without it, as tones in the audio (RFC 4733 §1: the way older gateways and phones send them), which an
  :class:`InbandTrack` finds in the stream's decoded PCM as the recorder takes it for mixing. The tones are
  audio the party sent: they stay in the recording. Detection is off unless switched on for the stream
  (:meth:`media.recorder.CallRecorder.set_inband_dtmf`): it costs CPU per second of audio.

Either way a press becomes a :class:`DtmfPress` on the recording's clock: seconds from its first frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from media.dtmf import DtmfEvent, DtmfSource
from media.dtmf_inband import InbandDtmfDetector
from media.packet_rules import DtmfMark

__all__ = ["INBAND_BATCH", "INBAND_TONE", "DtmfPress", "InbandPresses", "InbandTrack", "press_at"]

#: Seconds of audio an in-band detector waits for before it analyses what it was fed. The recorder feeds a
#: stream's audio once per mix (a second of it by default), so each mix is analysed at once, in one go; only
#: audio handed out in smaller pieces waits for the next.
INBAND_BATCH = 0.25
#: Seconds from a key going down to the detector seeing its tone end: a key held a quarter of a second (most
#: presses are shorter) and the three quiet windows that end a press (:mod:`media.dtmf_inband`).
INBAND_TONE = 0.3

Found = list[tuple[int, DtmfMark]]  # (stream index, press)


@dataclass(frozen=True, slots=True, kw_only=True)
class DtmfPress:
    """A key press on stream ``stream``: ``at`` seconds from the first frame, lasting ``duration`` (so far, for
    a press reported while the key is still down). ``source`` says how it came: RFC 4733 events (kept out of
    the audio) or in-band tones (part of the audio). The digit is as received (masking is the caller's
    policy)."""

    stream: int
    at: float
    duration: float
    digit: str | None
    volume: int | None
    source: DtmfSource = DtmfSource.RFC4733


def press_at(stream: int, mark: DtmfMark, first: int, sample_rate: int) -> DtmfPress:
    """The press ``mark`` of stream ``stream`` on a recording whose first frame is at position ``first``."""
    return DtmfPress(
        stream=stream,
        at=round((mark.position - first) / sample_rate, 4),
        duration=round(mark.samples / sample_rate, 4),
        digit=mark.event.digit,
        volume=mark.event.volume,
        source=mark.event.source,
    )


class InbandTrack:
    """In-band detection on one stream, fed the stream's PCM in timeline order as it is handed out.

    Positions are the stream's timeline positions: the first block fed sets where the detector's sample 0 is.
    The detector analyses in batches, so a press is found once its tone has ended and the batch holding its
    end has been analysed (see :mod:`media.dtmf_inband`). Presses found go to ``found``."""

    __slots__ = ("_base", "_detector", "_found", "stream")

    def __init__(self, stream: int, sample_rate: int, found: Found, pending: Found, *, batch: float) -> None:
        self.stream = stream
        self._detector = InbandDtmfDetector(sample_rate, batch=batch)
        self._found = (found, pending)
        self._base: int | None = None  # timeline position of the detector's sample 0

    def feed(self, pos: int, pcm: npt.NDArray[np.int16]) -> None:
        """``pcm`` is the stream's audio from position ``pos`` on, right after what was fed before."""
        if self._base is None:
            self._base = pos
        events = self._detector.feed(pcm)
        if events:
            self._keep(events)

    def flush(self) -> None:
        """The end of the stream (or of detection): a press whose tone is still going ends here."""
        self._keep(self._detector.flush())

    def _keep(self, events: list[DtmfEvent]) -> None:
        base = self._base or 0
        for event in events:
            mark = DtmfMark(position=base + event.start, samples=event.duration, event=event)
            for found in self._found:
                found.append((self.stream, mark))


class InbandPresses:
    """In-band detection on a call's streams (those switched on) and every press it found."""

    __slots__ = ("_batch", "_pending", "_sample_rate", "found", "tracks")

    def __init__(self, sample_rate: int, *, batch: float = INBAND_BATCH) -> None:
        self._sample_rate = sample_rate
        self._batch = batch
        self.tracks: dict[int, InbandTrack] = {}  # by stream index, while detection runs on it
        self.found: Found = []  # every press found, in the order found
        self._pending: Found = []  # of those, not taken yet

    def start(self, stream: int) -> None:
        if stream not in self.tracks:
            self.tracks[stream] = InbandTrack(
                stream, self._sample_rate, self.found, self._pending, batch=self._batch
            )

    def stop(self, stream: int) -> bool:
        """Detection on ``stream`` ends (a tone still going ends with it); False if it was not running."""
        track = self.tracks.pop(stream, None)
        if track is None:
            return False
        track.flush()
        return True

    def stop_all(self) -> bool:
        """The end of the recording; False if detection ran on no stream."""
        streams = list(self.tracks)
        for stream in streams:
            self.stop(stream)
        return bool(streams)

    def take(self) -> Found:
        """The presses found since the last call."""
        taken, self._pending[:] = list(self._pending), []
        return taken
