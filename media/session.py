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

Key presses for a caller that acts on them during the call (consent to recording): :meth:`MediaSession.take_presses`
hands out each press once, on the recording's clock (seconds from :attr:`MediaSession.media_start`), at most
:attr:`MediaSession.press_delay` seconds after the key went down. In-band detection is switched per stream
(:meth:`MediaSession.set_inband_dtmf`, off by default: it costs CPU per second of audio). When the caller
decides the call must not be kept, :meth:`MediaSession.discard` stops the recording at once: nothing more is
decoded or written and the file is closed as it stands; the sockets stay open, drained and their datagrams
dropped, so the sender notices nothing (no ICMP port unreachable) until the call ends.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Callable, Sequence

from media.presses import INBAND_BATCH, INBAND_TONE, DtmfPress
from media.pump import MediaPump
from media.receiver import RtpReceiver
from media.recorder import CallRecorder, Frames, RecordingResult, StreamSpec
from media.stats import StreamStats, StreamStatsSnapshot
from media.udp_batch import DatagramBatch
from media.write_queue import WriteQueue
from media.writer import AudioWriter, FlacWriter, RandomAccessSink

__all__ = ["TICK", "MediaSession"]

#: Seconds between two drains of a session's sockets (the media pump's tick).
TICK = 0.5
#: Seconds of audio between two STREAMINFO sample-count updates; each re-seals an encrypted file's first chunk.
COUNT_EVERY = 10.0

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
        self._discarded = False  # stopped for good: datagrams are drained and dropped, nothing is written
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
        open_sink: Callable[[str], RandomAccessSink] | None = None,
    ) -> MediaSession:
        """Bind one receiver per stream (``ports[i]`` for ``streams[i]``) and start recording to ``path``.

        ``open_sink`` creates the file at ``path`` (called in a worker thread), e.g. one that encrypts as it
        is written; None: a plain file. The sink is flushed after every write (each ``write_interval``); the
        file's STREAMINFO sample count is updated every ``COUNT_EVERY`` seconds of audio (crash recovery counts
        the frames after it: :func:`media.writer.restore_sample_count`).
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

            def open_writer() -> FlacWriter:  # in a worker thread: creating the file blocks
                name = os.fspath(path)
                sink = name if open_sink is None else open_sink(name)
                return FlacWriter(sink, channels, sample_rate, count_every=COUNT_EVERY)

            writer = await asyncio.get_running_loop().run_in_executor(None, open_writer)
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

    @property
    def media_start(self) -> float | None:
        """Wall time of the recording's first frame once output has started (the origin of press times)."""
        return self._recorder.media_start

    def set_inband_dtmf(self, index: int, enabled: bool) -> bool:
        """Switch in-band key detection on or off for stream ``index``; True when it now runs. It never runs on
        a stream that negotiated telephone-event (see :meth:`CallRecorder.set_inband_dtmf`)."""
        return self._recorder.set_inband_dtmf(index, enabled)

    def take_presses(self) -> list[DtmfPress]:
        """Key presses not taken before (see :meth:`CallRecorder.take_presses`), as of the last tick. After
        :meth:`close`, the last ones: presses still going at the end, ended there."""
        return self._recorder.take_presses()

    @property
    def press_delay(self) -> float:
        """Seconds :meth:`take_presses` may report a press after its key went down, on the recording's clock:
        an RFC 4733 event may arrive up to the reorder window behind its place (later packets are late for
        the audio too) and then waits for the next drain; an in-band press (on a stream with detection on)
        also waits for its tone to end and for the mix that hands its audio out."""
        delay = self._pump.tick + self._recorder.reorder_window
        if self._recorder.inband_dtmf:
            delay += INBAND_TONE + max(self._write_interval, INBAND_BATCH)
        return delay

    @property
    def discarded(self) -> bool:
        """True once :meth:`discard` stopped the recording."""
        return self._discarded

    async def discard(self) -> None:
        """Stop recording for good, now: nothing more is decoded, mixed or written, and the file is closed as
        it stands (what to do with it is the caller's decision). The sockets stay open until :meth:`close`,
        drained at every tick and their datagrams dropped, so the sender sees no change. Re-offers still work
        (streams join, leave, pause), recording nothing."""
        if self._discarded or self._closing:
            return
        self._discarded = True
        for index, (receiver, _) in self._sinks.items():
            self._sinks[index] = (receiver, _drop)
        await self._writes.run(self._close_writer)

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
        """Stop receiving, write the rest of the media and close the file (after :meth:`discard`: only stop
        receiving; the result is what was recorded up to the discard).

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
        if not self._discarded:
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
        if now < self._next_write or self._failure is not None or self._discarded:
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

    def _close_writer(self) -> None:
        """Writer thread: close the file after the writes queued before (a discarded recording)."""
        try:
            self._writer.close()
        except Exception as exc:
            self._failure = self._failure or exc
            log.exception("closing a discarded recording's file failed")

    def _write_last(self, frames: Frames | None) -> None:
        """Writer thread: the final frames, then close the file whatever happened before."""
        try:
            if frames is not None and self._failure is None:
                self._writer.write(frames)
        finally:
            self._writer.close()

    def _listen(self, spec: StreamSpec, receiver: RtpReceiver) -> None:
        self._receivers[spec.index] = (spec, receiver)
        sink = _drop if self._discarded else functools.partial(self._recorder.add_batch, spec.index)
        self._sinks[spec.index] = (receiver, sink)
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


def _drop(batch: DatagramBatch) -> None:
    """The sink of a discarded recording: the datagrams were read off the socket; nothing more is done."""
