"""One call's media: receivers, the recorder and the file, serviced by the shared pump (asyncio glue).

Every ``tick`` seconds the loop's :class:`~media.pump.MediaPump` lets the session drain each receiver into the
:class:`CallRecorder`; every ``write_interval`` seconds the session also hands the frames that became final to
the :class:`~media.write_queue.WriteQueue` thread (larger writes cost libFLAC less per second of audio). A
file's writes run in submission order on that thread, so the event loop never waits for the disk.

The tick (:data:`TICK`, half a second) sets how many packets a stream delivers per drain: the work per drain
(a ``recvmmsg`` call, the batch's checks, one table lookup and one copy into the timeline) costs about the same
for 10 packets as for 25, so a longer tick costs less per packet (measured with
``load_tests/bench_receive.py``: the whole media path at 500 calls took 11 µs per packet at a 200 ms tick,
8 µs at 500 ms). It adds no delay to the recording: each tick drains before it mixes, and what is mixed is
older than the reorder window anyway. RTCP is read at every tick from the sockets that have a report queued
(:class:`~media.receiver.RtpReceiver` looks with ``epoll`` first): a sender report reaches the alignment
within a tick of its arrival, well inside the ``sync_wait`` the start of a recording waits for them.

Mid-call changes come from re-offers: :meth:`MediaSession.add_stream` binds a receiver for a new m-line,
:meth:`MediaSession.remove_stream` releases one (port 0), :meth:`MediaSession.set_paused` and
:meth:`MediaSession.set_stream_paused` follow hold and `a=inactive`. Pause times are read from the wall clock,
the clock the receivers stamp arrivals with.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Callable, Sequence

from media.pump import MediaPump
from media.receiver import RtpReceiver
from media.recorder import CallRecorder, Frames, RecordingResult, StreamSpec
from media.stats import StreamStats, StreamStatsSnapshot
from media.udp_batch import DatagramBatch
from media.write_queue import WriteQueue
from media.writer import AudioWriter, FlacWriter

__all__ = ["TICK", "MediaSession"]

#: Seconds between two drains of a session's sockets (the media pump's tick).
TICK = 0.5

log = logging.getLogger(__name__)


class MediaSession:
    """Use :meth:`open`; :meth:`close` finishes the file and returns what was recorded."""

    def __init__(
        self,
        *,
        receivers: Sequence[tuple[StreamSpec, RtpReceiver]],
        recorder: CallRecorder,
        writer: AudioWriter,
        tick: float,
        write_interval: float,
        host: str | None = None,
    ) -> None:
        """``host`` is where :meth:`add_stream` binds; by default the first receiver's address."""
        self._receivers: dict[int, tuple[StreamSpec, RtpReceiver]] = {}
        # Per stream being received: its receiver and where its batches go (the recorder).
        self._sinks: dict[int, tuple[RtpReceiver, Callable[[DatagramBatch], None]]] = {}
        self._unlatched: set[int] = set()  # streams whose remote address is not in their statistics yet
        self._host = host if host is not None else next((r.host for _, r in receivers), None)
        self._recorder = recorder
        for spec, receiver in receivers:
            self._listen(spec, receiver)
        self._writer = writer
        self._write_interval = write_interval
        self._writes = WriteQueue.shared()
        self._failure: BaseException | None = None  # set by the writer thread; then nothing more is written
        self._paused_streams: set[int] = set()
        self._result: RecordingResult | None = None
        self._closing = False
        loop = asyncio.get_running_loop()
        self._next_write = loop.time() + write_interval
        self._pump = MediaPump.shared(tick)
        self._pump.add(self)

    @classmethod
    async def open(
        cls,
        host: str,
        ports: Sequence[int],
        streams: Sequence[StreamSpec],
        channels: int,
        path: str | os.PathLike[str],
        sample_rate: int = 8000,
        tick: float = TICK,
        reorder_window: float = 0.3,
        *,
        sync_wait: float = 0.0,
        write_interval: float = 1.0,
    ) -> MediaSession:
        """Bind one receiver per stream (``ports[i]`` for ``streams[i]``) and start recording to ``path``.

        Raises ``OSError`` if a port cannot be bound; nothing stays bound or open then.
        """
        if len(ports) != len(streams):
            raise ValueError(f"{len(streams)} streams need {len(streams)} ports, got {len(ports)}")
        if tick <= 0:
            raise ValueError("tick must be positive")
        recorder = CallRecorder(
            streams=streams,
            channels=channels,
            sample_rate=sample_rate,
            reorder_window=reorder_window,
            sync_wait=sync_wait,
        )
        receivers: list[tuple[StreamSpec, RtpReceiver]] = []
        try:
            for spec, port in zip(streams, ports, strict=True):
                receivers.append((spec, await RtpReceiver.open(host, port)))
            loop = asyncio.get_running_loop()
            writer = await loop.run_in_executor(None, FlacWriter, path, channels, sample_rate)
        except BaseException:
            for _, receiver in receivers:
                receiver.close()
            await asyncio.gather(*(receiver.wait_closed() for _, receiver in receivers))
            raise
        return cls(
            receivers=receivers,
            recorder=recorder,
            writer=writer,
            tick=tick,
            write_interval=write_interval,
            host=host,
        )

    @property
    def paused(self) -> bool:
        """True while the recording as a whole is paused."""
        return self._recorder.paused

    def set_paused(self, paused: bool) -> None:
        """Pause or resume the whole recording now (hold, API): media and telephone events received while
        paused are dropped (``suppressed``); the timeline keeps running as silence and the interval is kept."""
        self._recorder.set_paused(paused, time.time())

    def set_stream_paused(self, index: int, paused: bool) -> None:
        """Pause or resume one stream now (its m-line went `a=inactive`, or back); ``index`` is its
        :attr:`StreamSpec.index`. When every stream is paused, the recording counts as paused."""
        self._recorder.set_stream_paused(index, paused, time.time())
        if paused:
            self._paused_streams.add(index)
        else:
            self._paused_streams.discard(index)

    def pauses(self) -> list[tuple[float, float | None]]:
        """Pause intervals of the whole recording so far, seconds from the first frame; the end of an open
        one is ``None``. Empty until media arrived."""
        return self._recorder.pauses()

    async def add_stream(self, port: int, spec: StreamSpec) -> None:
        """Bind ``port`` (and ``port + 1``) for a stream that joins now, into the same recording at its real
        time offset (silence before it). ``spec.index`` must be new and ``spec.channel`` one of the file's.

        Raises ``OSError`` if the port cannot be bound (nothing changes then), ``ValueError`` for a bad spec.
        """
        if self._closing:
            raise RuntimeError("the media session is closed")
        if spec.index in self._receivers or self._host is None:
            raise ValueError(f"stream {spec.index} cannot be added: index taken or no listen address")
        receiver = await RtpReceiver.open(self._host, port)
        try:
            self._recorder.add_stream(spec, time.time())
        except BaseException:
            receiver.close()
            await receiver.wait_closed()
            raise
        self._listen(spec, receiver)

    async def remove_stream(self, index: int) -> StreamStatsSnapshot:
        """Stop receiving a stream (port 0 in a re-offer) and release its ports: what it sent stays in the
        recording, its statistics in the result. Returns them as they stand. The ports are free on return."""
        entry = self._receivers.pop(index, None)
        if entry is None:
            raise ValueError(f"stream {index} is not being received")
        spec, receiver = entry
        receiver.close()
        self._receive(index)
        self._sinks.pop(index)
        self._unlatched.discard(index)
        self._recorder.remove_stream(spec.index, time.time())
        await receiver.wait_closed()
        return self._recorder.stream_stats(spec.index).snapshot()

    def stats(self) -> list[StreamStatsSnapshot]:
        """Statistics as of the last tick, one per stream in the order streams were opened or added (removed
        ones too). Reading them receives nothing: a scrape of thousands of streams does not run the media
        path out of turn."""
        return self._recorder.snapshots()

    def counters(self) -> list[StreamStats]:
        """The live counters of every stream (same order as :meth:`stats`), as of the last tick: read them,
        never change them. Cheaper than :meth:`stats` when only a few counters are summed (metrics)."""
        return self._recorder.counters()

    def received_any(self) -> bool:
        """True once any valid RTP packet arrived on any stream."""
        self._collect()
        return self._recorder.received_any()

    def silent_streams(self) -> list[int]:
        """Indices of the streams being received, not paused, that have not delivered one RTP packet yet."""
        self._collect()
        return [
            index
            for index in self._receivers
            if index not in self._paused_streams and self._recorder.stream_stats(index).packets == 0
        ]

    async def close(self) -> RecordingResult:
        """Stop receiving, write the rest of the media and close the file.

        A write error from a tick or from the final write is raised after the file has been closed.
        """
        if self._result is not None:
            return self._result
        self._closing = True
        self._pump.discard(self)
        receivers = list(self._receivers.values())
        for _, receiver in receivers:
            receiver.close()
        frames: Frames | None = None
        failure: BaseException | None = None
        try:
            self._collect()
            frames = self._recorder.mix_final(time.time())
        except Exception as exc:
            failure = exc
        try:
            await self._writes.run(lambda: self._write_last(frames))
        except Exception as exc:
            failure = failure or exc
        await asyncio.gather(*(receiver.wait_closed() for _, receiver in receivers))
        failure = failure or self._failure
        self._result = self._recorder.result()
        if failure is not None:
            raise failure
        log.info(
            "recording closed: %.2f s of media from %s, paused %s; per stream (packets, lost, late, srtp "
            "failures): %s",
            self._result.duration,
            self._result.media_start,
            self._result.pauses,
            [(s.packets, s.lost, s.late, s.srtp_failures) for s in self._result.streams],
        )
        return self._result

    def service(self, now: float) -> None:
        """One pump tick (``now``: the loop's clock): drain the receivers; every ``write_interval``, hand
        the frames that became final to the writer thread."""
        self._collect()
        if now < self._next_write or self._failure is not None:
            return
        self._next_write = now + self._write_interval
        frames = self._recorder.mix(time.time())
        if frames is not None:
            self._writes.submit(lambda: self._write(frames))

    def _write(self, frames: Frames) -> None:
        """Writer thread: append ``frames`` unless an earlier write failed."""
        if self._failure is not None:
            return
        try:
            self._writer.write(frames)
        except Exception as exc:
            self._failure = exc
            log.exception("writing the recording failed; media is no longer recorded")

    def _write_last(self, frames: Frames | None) -> None:
        """Writer thread: the final frames, then close the file whatever happened before."""
        try:
            if frames is not None and self._failure is None:
                self._writer.write(frames)
        finally:
            self._writer.close()

    def _listen(self, spec: StreamSpec, receiver: RtpReceiver) -> None:
        self._receivers[spec.index] = (spec, receiver)
        self._sinks[spec.index] = (receiver, functools.partial(self._recorder.add_batch, spec.index))
        self._unlatched.add(spec.index)

    def _collect(self) -> None:
        for index in self._sinks:
            self._receive(index)

    def _receive(self, index: int) -> None:
        receiver, sink = self._sinks[index]
        receiver.receive(sink)
        if index in self._unlatched:
            self._latch(index, receiver)

    def _latch(self, index: int, receiver: RtpReceiver) -> None:
        """The remote address goes into the statistics once: the receiver latches the first one for good."""
        remote = receiver.remote
        if remote is not None:
            self._recorder.stream_stats(index).remote = remote
            self._unlatched.discard(index)
