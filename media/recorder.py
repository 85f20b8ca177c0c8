"""A call's streams mixed onto one multi-channel timeline (sans-I/O).

Every stream has a :class:`StreamTimeline`; all share one ``origin``, the arrival time of the first packet the
recorder saw, so their positions are comparable. Output starts at the earliest placed sample of any stream
(the media start) and is emitted in wall-clock order once it is older than ``now - reorder_window``: a gap
in the media stays on the timeline as silence. :meth:`CallRecorder.mix_final` completes the recording up to
the end of the last packet of any stream, or of the last pause if that ends later (a call held until it
hangs up is recorded to its end), so a call that ends with its media is as long as its media span.

Streams may join mid-call (:meth:`CallRecorder.add_stream`: silence before their first packet) and leave
(:meth:`CallRecorder.remove_stream`: what they sent is kept). SRTP streams are decrypted batch by batch before
their timeline sees them (:mod:`media.decrypt`). Pauses follow :mod:`media.pauses`.

Anchoring by arrival puts a stream whose path is slower late by the difference. Once RTCP sender reports of
two or more streams are known, the streams are moved onto the SRC's clock (:mod:`media.clock_sync`): a new
report is checked against the other streams' (one that contradicts them all by more than
:data:`media.clock_sync.MAX_SKEW` is counted and ignored), then the streams lagging behind the least-delayed
one are shifted earlier, by at most the reorder window less :data:`media.clock_sync.ALIGN_MARGIN` in all (their
packets must still land after what was handed out); when the paths differ by more, the least-delayed stream
moves later for the rest. Each move drops or pads its size once. Without sender reports nothing moves. With
``sync_wait``, output waits up to that long after the first packet for every delivering stream's first
report: streams aligned before anything is handed out move whole, with nothing dropped or padded.

Key presses (:mod:`media.presses`) are kept per stream on the recording's clock and listed in the result.
:meth:`CallRecorder.take_presses` reports each one once, as soon as its start is known, for a caller that
acts on keys during the call: an RFC 4733 press from its first packet (the key-down time, duration so far), an
in-band press once its tone has ended. In-band detection runs only on streams switched on with
:meth:`CallRecorder.set_inband_dtmf`, which never applies to a stream with telephone-event: one press is
never reported both ways. Its detectors are fed each stream's PCM as :meth:`CallRecorder.mix` takes it, so a
press is found up to one mix interval (plus one detector batch) after its tone reached the mix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from media.clock_sync import ALIGN_MARGIN, SyncPoint, alignment, consistent
from media.codecs import Codec
from media.decrypt import decrypt_batch
from media.pauses import PauseState
from media.presses import DtmfPress, InbandPresses, InbandTrack, press_at
from media.srtp import SrtpDecryptor, SrtpKey
from media.stats import StreamStats, StreamStatsSnapshot
from media.timeline import StreamTimeline
from media.udp_batch import DatagramBatch

__all__ = ["CallRecorder", "DtmfPress", "RecordingResult", "StreamSpec"]

Frames = npt.NDArray[np.int16]


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamSpec:
    """One received stream: ``index`` names it in :meth:`CallRecorder.add`; ``channel`` is where it goes.

    ``srtp`` is the SRC's SDES key (RFC 4568) when the stream is SRTP, ``None`` for plain RTP.
    """

    index: int
    channel: int
    codec: Codec
    payload_type: int
    telephone_event_pt: int | None = None
    srtp: SrtpKey | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingResult:
    """What was written: ``media_start`` is the wall time of the first frame, ``None`` without media.

    ``streams`` follows the order streams were given or added, removed ones included. ``pauses`` are the
    intervals the whole recording was paused, as ``(start, end)`` seconds from the first frame.
    """

    media_start: float | None
    duration: float
    frames: int
    streams: list[StreamStatsSnapshot]
    pauses: list[tuple[float, float]] = field(default_factory=list)
    dtmf: list[DtmfPress] = field(default_factory=list)


class CallRecorder:
    """Feed packets per stream with :meth:`add`; collect final frames with :meth:`mix`, :meth:`mix_final`."""

    __slots__ = (
        "_channels",
        "_decryptors",
        "_emitted",
        "_frames",
        "_inband",
        "_max_advance",
        "_mixing",
        "_origin",
        "_pauses",
        "_reorder_window",
        "_retired",
        "_retiring",
        "_sample_rate",
        "_specs",
        "_sync_wait",
        "_timelines",
    )

    def __init__(
        self,
        *,
        streams: Sequence[StreamSpec],
        channels: int,
        sample_rate: int = 8000,
        reorder_window: float = 0.3,
        sync_wait: float = 0.0,
    ) -> None:
        """``sync_wait``: seconds from the first packet that output waits for a sender report of every
        stream that delivers, so the streams can be aligned before anything is handed out (0: never waits)."""
        if channels < 1:
            raise ValueError("at least one channel is needed")
        if reorder_window < 0:
            raise ValueError("the reorder window cannot be negative")
        self._channels = channels
        self._sample_rate = sample_rate
        self._reorder_window = reorder_window
        self._max_advance = round(max(0.0, reorder_window - ALIGN_MARGIN) * sample_rate)
        self._sync_wait = sync_wait
        self._specs: list[StreamSpec] = []
        self._timelines: dict[int, StreamTimeline] = {}
        self._decryptors: dict[int, SrtpDecryptor] = {}
        self._pauses = PauseState()
        self._retiring: set[int] = set()  # removed streams whose audio is not all handed out yet
        self._retired: set[int] = set()  # removed streams no longer mixed
        # (channel, sources mixed into it); a channel with one stream is copied, with more summed. A source is
        # a stream's timeline and its in-band detection (None when off).
        self._mixing: tuple[tuple[int, tuple[tuple[StreamTimeline, InbandTrack | None], ...]], ...] = ()
        self._origin: float | None = None
        self._emitted: int | None = None
        self._frames = 0
        self._inband = InbandPresses(sample_rate)  # detection on the streams switched on, and its finds
        for spec in streams:
            self._insert(spec)
            self._pauses.add_stream(spec.index, 0.0)  # nothing is paused yet: no time is recorded
        self._remix()

    @property
    def media_start(self) -> float | None:
        """Wall time of the first frame, once output has started."""
        if self._origin is None or self._emitted is None:
            return None
        return self._origin + (self._emitted - self._frames) / self._sample_rate

    @property
    def frames(self) -> int:
        """Frames handed out so far."""
        return self._frames

    @property
    def reorder_window(self) -> float:
        """Seconds audio waits on its timeline before it is mixed (reordered packets still find their place)."""
        return self._reorder_window

    @property
    def paused(self) -> bool:
        """True while the recording as a whole is paused (see :mod:`media.pauses`)."""
        return self._pauses.paused

    def stream_stats(self, stream_index: int) -> StreamStats:
        """The live (mutable) statistics of one stream (cheap: ``jitter_ms`` is folded in by ``snapshot()``)."""
        return self._timelines[stream_index].stats

    def snapshots(self) -> list[StreamStatsSnapshot]:
        """Statistics of every stream, in the order the streams were given or added."""
        return [self._timelines[spec.index].stats.snapshot() for spec in self._specs]

    def counters(self) -> list[StreamStats]:
        """The live statistics of every stream, in the order of :meth:`snapshots` (``jitter_ms`` as last
        folded in); for reading only."""
        return [self._timelines[spec.index].stats for spec in self._specs]

    def received_any(self) -> bool:
        """True once any stream counted a valid RTP packet."""
        return any(timeline.stats.packets for timeline in self._timelines.values())

    def add_stream(self, spec: StreamSpec, now: float) -> None:
        """A stream that joins mid-call at wall time ``now``: it is silent until its first packet, and paused
        at once if the whole recording is. Its channel must be one of the recording's."""
        timeline = self._insert(spec)
        if self._emitted is not None:
            timeline.seek(self._emitted)  # silence from where the recording stands
        self._apply(self._pauses.add_stream(spec.index, now), now)
        self._remix()

    def remove_stream(self, stream_index: int, now: float) -> None:
        """Stop expecting a stream (port 0 in a re-offer): what it sent is still handed out; stats are kept."""
        if stream_index not in self._timelines:
            raise ValueError(f"no stream {stream_index}")
        if stream_index in self._retiring or stream_index in self._retired:
            return
        self._apply(self._pauses.remove_stream(stream_index, now), now)
        self._retiring.add(stream_index)

    def set_paused(self, paused: bool, now: float) -> None:
        """Pause or resume the whole recording from wall time ``now``: paused media becomes silence."""
        self._apply(self._pauses.set_all(paused, now), now)

    def set_stream_paused(self, stream_index: int, paused: bool, now: float) -> None:
        """Pause or resume one stream from wall time ``now`` (e.g. its m-line went `a=inactive`)."""
        self._apply(self._pauses.set_stream(stream_index, paused, now), now)

    def pauses(self, now: float | None = None) -> list[tuple[float, float | None]]:
        """Pause intervals so far as seconds from the first frame (empty before media); an open one ends at
        ``now`` if given, else ``None``."""
        start = self._start_wall()
        if start is None:
            return []
        return self._pauses.offsets(start, None if now is None else now - start)

    def add(self, stream_index: int, packets: Sequence[tuple[float, bytes]]) -> None:
        """Place ``(arrival wall time, datagram)`` pairs received for one stream."""
        if not packets:
            return
        timeline = self._timelines[stream_index]
        decryptor = self._decryptors.get(stream_index)
        if decryptor is not None:
            packets, failures = decrypt_batch(decryptor, packets)
            timeline.stats.srtp_failures += failures
            if not packets:
                return
        if self._origin is None:
            self._origin = packets[0][0]
            for each in self._timelines.values():
                each.origin = self._origin
        timeline.add(packets)
        if timeline.sync_offered:
            self._synchronise(stream_index)

    def add_batch(self, stream_index: int, batch: DatagramBatch) -> None:
        """Place a batch as the socket read left it (valid during the call; see :mod:`media.udp_batch`): the
        same as :meth:`add` of its datagrams, without copying out a plain batch of plain RTP."""
        if not batch.count:
            return
        if self._origin is None or stream_index in self._decryptors:
            self.add(stream_index, batch.datagrams())
            return
        timeline = self._timelines[stream_index]
        timeline.add_batch(batch)
        if timeline.sync_offered:
            self._synchronise(stream_index)

    def mix(self, now: float) -> Frames | None:
        """Frames older than ``now - reorder_window`` not yet handed out, shape ``(n, channels)``, or None."""
        if self._origin is None:
            return None
        if self._emitted is None and now - self._origin < self._sync_wait and not self._synchronised():
            return None  # the start waits for sender reports: aligned before written, nothing dropped
        until = math.floor((now - self._reorder_window - self._origin) * self._sample_rate)
        # Never past the last placed sample: silence after it is written once a later packet (or the end of
        # the call, :meth:`mix_final`) says how long it lasted. A BYE handled late under load then does not
        # stretch the recording with the seconds it waited.
        ends = [t.end_pos for t in self._timelines.values() if t.end_pos is not None]
        if ends:
            until = min(until, max(ends))
        return self._render(until)

    def _synchronised(self) -> bool:
        """Every stream that delivered audio has an accepted sender report (or only one stream delivered and
        no other is expected)."""
        delivering = [t for t in self._timelines.values() if t.start_pos is not None]
        if len(self._timelines) < 2:
            return True
        return len(delivering) >= 2 and all(t.sync_point() is not None for t in delivering)

    def mix_final(self, now: float | None = None) -> Frames | None:
        """Everything up to the end of the last packet of any stream, or of the last pause if later (one
        still open ends at ``now``); call after the last :meth:`add`."""
        ends = [t.end_pos for t in self._timelines.values() if t.end_pos is not None]
        if not ends:
            return None
        pause_end = self._pauses.last_end(now)
        if pause_end is not None and self._origin is not None:
            ends.append(math.floor((pause_end - self._origin) * self._sample_rate))
        frames = self._render(max(ends))
        if self._inband.stop_all():  # presses still sounding end here
            self._remix()
        return frames

    def result(self) -> RecordingResult:
        """What was recorded; in-band detection ends here if :meth:`mix_final` did not end it."""
        if self._inband.stop_all():
            self._remix()
        duration = self._frames / self._sample_rate
        start = self.media_start
        pauses = [] if start is None else self._pauses.offsets(start, duration)
        return RecordingResult(
            media_start=start,
            duration=duration,
            frames=self._frames,
            streams=self.snapshots(),
            pauses=[(begin, duration if end is None else end) for begin, end in pauses],
            dtmf=self._presses(),
        )

    def set_inband_dtmf(self, stream_index: int, enabled: bool) -> bool:
        """Switch in-band key detection on or off for one stream (off by default); True when it now runs.

        It never runs on a stream that negotiated telephone-event (its keys come as RFC 4733 events), nor on
        one that was removed. Switched off, a press whose tone is still going is reported as ending there."""
        spec = next((s for s in self._specs if s.index == stream_index), None)
        if spec is None:
            raise ValueError(f"no stream {stream_index}")
        tracks = self._inband.tracks
        if enabled and stream_index not in tracks:
            if spec.telephone_event_pt is not None or stream_index in self._retiring | self._retired:
                return False
            self._inband.start(stream_index)
            self._remix()
        elif not enabled and self._inband.stop(stream_index):
            self._remix()
        return enabled

    @property
    def inband_dtmf(self) -> frozenset[int]:
        """The streams in-band detection runs on."""
        return frozenset(self._inband.tracks)

    def take_presses(self) -> list[DtmfPress]:
        """Key presses not taken before, each once, in time order: RFC 4733 ones as soon as their first packet
        was placed (``duration`` so far), in-band ones once found. Nothing before the first frame is handed
        out (a press has no time on the recording until then): those come with the first call after it."""
        if self._emitted is None:
            return []
        first = self._emitted - self._frames
        rate = self._sample_rate
        presses = [
            press_at(spec.index, mark, first, rate)
            for spec in self._specs
            if spec.telephone_event_pt is not None
            for mark in self._timelines[spec.index].take_presses()
        ]
        presses += (press_at(index, mark, first, rate) for index, mark in self._inband.take())
        return sorted(presses, key=lambda press: (press.at, press.stream))

    def _presses(self) -> list[DtmfPress]:
        """Every stream's key presses, both kinds, in time order, relative to the first frame handed out."""
        if self._emitted is None:
            return []
        first = self._emitted - self._frames
        rate = self._sample_rate
        presses = [
            press_at(spec.index, mark, first, rate)
            for spec in self._specs
            for mark in self._timelines[spec.index].dtmf(final=True)
        ]
        presses += (press_at(index, mark, first, rate) for index, mark in self._inband.found)
        return sorted(presses, key=lambda press: (press.at, press.stream))

    def _synchronise(self, stream_index: int) -> None:
        """A new sender report on one stream: check it against the other streams', then align them all."""
        timeline = self._timelines[stream_index]
        candidate = timeline.sync_candidate()
        gone = self._retiring | self._retired
        points: dict[int, SyncPoint] = {}
        for spec in self._specs:
            point = None if spec.index in gone else self._timelines[spec.index].sync_point()
            if point is not None and spec.index != stream_index:
                points[spec.index] = point
        accepted = candidate is not None and consistent(candidate, points.values(), self._sample_rate)
        timeline.settle_sync(accepted)
        if candidate is None or not accepted or stream_index in gone:
            return
        points[stream_index] = candidate
        # Advances made before the first output cost nothing and do not count against the limit.
        offsets = {index: self._timelines[index].offset_since_output for index in points}
        # Before the first output, placed audio moves with its stream (nothing dropped): no limit applies.
        limit = self._max_advance if self._emitted is not None else 1 << 40
        for index, shift in alignment(points, offsets, self._sample_rate, limit).items():
            self._timelines[index].shift(shift)

    def _insert(self, spec: StreamSpec) -> StreamTimeline:
        if spec.index in self._timelines:
            raise ValueError(f"stream index {spec.index} given twice")
        if not 0 <= spec.channel < self._channels:
            raise ValueError(f"stream {spec.index}: channel {spec.channel} not in 0..{self._channels - 1}")
        if spec.codec.sample_rate != self._sample_rate:
            raise ValueError(
                f"stream {spec.index}: {spec.codec.name} decodes at {spec.codec.sample_rate} Hz, "
                f"the recording is {self._sample_rate} Hz"
            )
        timeline = StreamTimeline(
            codec=spec.codec,
            payload_type=spec.payload_type,
            telephone_event_pt=spec.telephone_event_pt,
            origin=self._origin,
        )
        if spec.srtp is not None:
            self._decryptors[spec.index] = SrtpDecryptor(spec.srtp)
        self._specs.append(spec)
        self._timelines[spec.index] = timeline
        return timeline

    def _apply(self, changes: list[tuple[int, bool]], now: float) -> None:
        for index, paused in changes:
            if paused:
                self._timelines[index].pause(now)
            else:
                self._timelines[index].resume(now)

    def _remix(self) -> None:
        mixed = [s for s in self._specs if s.index not in self._retired]
        inband = self._inband.tracks
        self._mixing = tuple(
            (
                channel,
                tuple((self._timelines[s.index], inband.get(s.index)) for s in mixed if s.channel == channel),
            )
            for channel in range(self._channels)
        )

    def _retire(self, until: int) -> None:
        """Stop mixing removed streams whose audio has all been handed out."""
        done = [
            index
            for index in self._retiring
            if (end := self._timelines[index].end_pos) is None or end <= until
        ]
        if done:
            self._retiring.difference_update(done)
            self._retired.update(done)
            for index in done:
                self._inband.stop(index)
            self._remix()

    def _start_wall(self) -> float | None:
        """Wall time of the first frame: handed out already, or what will be the first."""
        if self._origin is None:
            return None
        if self._emitted is not None:
            return self._origin + (self._emitted - self._frames) / self._sample_rate
        starts = [t.start_pos for t in self._timelines.values() if t.start_pos is not None]
        return self._origin + min(starts) / self._sample_rate if starts else None

    def _render(self, until: int) -> Frames | None:
        emitted = self._emitted
        if emitted is None:
            starts = [t.start_pos for t in self._timelines.values() if t.start_pos is not None]
            if not starts:
                return None
            emitted = min(starts)
            if until <= emitted:
                return None
            for timeline in self._timelines.values():
                timeline.seek(emitted)
            self._emitted = emitted
        count = until - emitted
        if count <= 0:
            return None
        out = np.zeros((count, self._channels), dtype=np.int16)
        for channel, sources in self._mixing:
            if len(sources) == 1:
                timeline, track = sources[0]
                pcm = timeline.take(until)
                out[:, channel] = pcm
                if track is not None:
                    track.feed(emitted, pcm)
            elif sources:
                total = np.zeros(count, dtype=np.int32)
                for timeline, track in sources:
                    pcm = timeline.take(until)
                    total += pcm
                    if track is not None:
                        track.feed(emitted, pcm)
                np.clip(total, -32768, 32767, out=total)  # saturate instead of wrapping around
                out[:, channel] = total
        self._emitted = until
        self._frames += count
        if self._retiring:
            self._retire(until)
        return out
