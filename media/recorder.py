"""A call's streams mixed onto one multi-channel timeline (sans-I/O).

Every stream has a :class:`StreamTimeline`; all share one ``origin``, the arrival time of the first packet the
recorder saw, so their positions are comparable. Output starts at the earliest placed sample of any stream
(the media start) and is emitted in wall-clock order once it is older than ``now - reorder_window``: a pause
in the media stays on the timeline as silence. :meth:`CallRecorder.mix_final` completes the recording up to
the end of the last packet of any stream, so a call that ends with its media is as long as its media span.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from media.codecs import Codec
from media.stats import StreamStats, StreamStatsSnapshot
from media.timeline import StreamTimeline

__all__ = ["CallRecorder", "RecordingResult", "StreamSpec"]

Frames = npt.NDArray[np.int16]


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamSpec:
    """One received stream: ``index`` names it in :meth:`CallRecorder.add`; ``channel`` is where it goes."""

    index: int
    channel: int
    codec: Codec
    payload_type: int
    telephone_event_pt: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingResult:
    """What was written: ``media_start`` is the wall time of the first frame, ``None`` without media."""

    media_start: float | None
    duration: float
    frames: int
    streams: list[StreamStatsSnapshot]


class CallRecorder:
    """Feed packets per stream with :meth:`add`; collect final frames with :meth:`mix`, :meth:`mix_final`."""

    __slots__ = (
        "_channels",
        "_emitted",
        "_frames",
        "_mixing",
        "_origin",
        "_reorder_window",
        "_sample_rate",
        "_specs",
        "_timelines",
    )

    def __init__(
        self,
        *,
        streams: Sequence[StreamSpec],
        channels: int,
        sample_rate: int = 8000,
        reorder_window: float = 0.3,
    ) -> None:
        if channels < 1:
            raise ValueError("at least one channel is needed")
        if reorder_window < 0:
            raise ValueError("the reorder window cannot be negative")
        self._channels = channels
        self._sample_rate = sample_rate
        self._reorder_window = reorder_window
        self._specs = tuple(streams)
        self._timelines: dict[int, StreamTimeline] = {}
        for spec in self._specs:
            if spec.index in self._timelines:
                raise ValueError(f"stream index {spec.index} given twice")
            if not 0 <= spec.channel < channels:
                raise ValueError(f"stream {spec.index}: channel {spec.channel} not in 0..{channels - 1}")
            if spec.codec.sample_rate != sample_rate:
                raise ValueError(
                    f"stream {spec.index}: {spec.codec.name} decodes at {spec.codec.sample_rate} Hz, "
                    f"the recording is {sample_rate} Hz"
                )
            self._timelines[spec.index] = StreamTimeline(
                codec=spec.codec, payload_type=spec.payload_type, telephone_event_pt=spec.telephone_event_pt
            )
        # (channel, timelines mixed into it); a channel with one stream is copied, with more summed.
        self._mixing = tuple(
            (channel, tuple(self._timelines[s.index] for s in self._specs if s.channel == channel))
            for channel in range(channels)
        )
        self._origin: float | None = None
        self._emitted: int | None = None
        self._frames = 0

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

    def stream_stats(self, stream_index: int) -> StreamStats:
        """The live (mutable) statistics of one stream."""
        return self._timelines[stream_index].stats

    def snapshots(self) -> list[StreamStatsSnapshot]:
        """Statistics of every stream, in the order the streams were given."""
        return [self._timelines[spec.index].stats.snapshot() for spec in self._specs]

    def set_paused(self, paused: bool, now: float) -> None:
        """Pause or resume all streams from wall time ``now``: paused media becomes silence."""
        for timeline in self._timelines.values():
            if paused:
                timeline.pause(now)
            else:
                timeline.resume(now)

    def add(self, stream_index: int, packets: Sequence[tuple[float, bytes]]) -> None:
        """Place ``(arrival wall time, datagram)`` pairs received for one stream."""
        if not packets:
            return
        timeline = self._timelines[stream_index]
        if self._origin is None:
            self._origin = packets[0][0]
            for each in self._timelines.values():
                each.origin = self._origin
        timeline.add(packets)

    def mix(self, now: float) -> Frames | None:
        """Frames older than ``now - reorder_window`` not yet handed out, shape ``(n, channels)``, or None."""
        if self._origin is None:
            return None
        until = math.floor((now - self._reorder_window - self._origin) * self._sample_rate)
        return self._render(until)

    def mix_final(self) -> Frames | None:
        """Everything up to the end of the last packet of any stream; call after the last :meth:`add`."""
        ends = [t.end_pos for t in self._timelines.values() if t.end_pos is not None]
        if not ends:
            return None
        return self._render(max(ends))

    def result(self) -> RecordingResult:
        return RecordingResult(
            media_start=self.media_start,
            duration=self._frames / self._sample_rate,
            frames=self._frames,
            streams=self.snapshots(),
        )

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
        for channel, timelines in self._mixing:
            if len(timelines) == 1:
                out[:, channel] = timelines[0].take(until)
            elif timelines:
                total = np.zeros(count, dtype=np.int32)
                for timeline in timelines:
                    total += timeline.take(until)
                np.clip(total, -32768, 32767, out=total)  # saturate instead of wrapping around
                out[:, channel] = total
        self._emitted = until
        self._frames += count
        return out
