"""One call's media: receivers, the recorder and the file, driven by a periodic tick (asyncio glue).

Every ``tick`` seconds the session drains each receiver into the :class:`CallRecorder`; every
``write_interval`` seconds it also writes the frames that became final (larger writes cost libFLAC and the
executor hand-off less per second of audio). Writes run in a thread executor so the event loop never waits
for the disk; they are strictly sequential because the tick awaits each write before it goes on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence

from media.receiver import RtpReceiver
from media.recorder import CallRecorder, RecordingResult, StreamSpec
from media.stats import StreamStatsSnapshot
from media.writer import AudioWriter, FlacWriter

__all__ = ["MediaSession"]

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
    ) -> None:
        self._receivers = tuple(receivers)
        self._recorder = recorder
        self._writer = writer
        self._tick = tick
        self._write_interval = write_interval
        self._write: asyncio.Future[None] | None = None
        self._result: RecordingResult | None = None
        self._task = asyncio.get_running_loop().create_task(self._run())

    @classmethod
    async def open(
        cls,
        host: str,
        ports: Sequence[int],
        streams: Sequence[StreamSpec],
        channels: int,
        path: str | os.PathLike[str],
        sample_rate: int = 8000,
        tick: float = 0.2,
        reorder_window: float = 0.3,
        *,
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
            streams=streams, channels=channels, sample_rate=sample_rate, reorder_window=reorder_window
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
            receivers=receivers, recorder=recorder, writer=writer, tick=tick, write_interval=write_interval
        )

    def set_paused(self, paused: bool) -> None:
        """Pause or resume now: media received while paused is dropped; the timeline keeps silence."""
        self._recorder.set_paused(paused, time.time())

    def stats(self) -> list[StreamStatsSnapshot]:
        """Live statistics, one per stream in the order given to :meth:`open`."""
        self._collect()
        return self._recorder.snapshots()

    def received_any(self) -> bool:
        """True once any valid RTP packet arrived on any stream."""
        self._collect()
        return any(self._recorder.stream_stats(spec.index).packets for spec, _ in self._receivers)

    async def close(self) -> RecordingResult:
        """Stop receiving, write the rest of the media and close the file.

        A write error from a tick or from the final write is raised after the file has been closed.
        """
        if self._result is not None:
            return self._result
        loop = asyncio.get_running_loop()
        self._task.cancel()
        await asyncio.wait({self._task})
        failure = None if self._task.cancelled() else self._task.exception()
        for _, receiver in self._receivers:
            receiver.close()
        try:
            if self._write is not None:
                await self._write  # the write a cancelled tick left running: keep the order of frames
            if failure is None:
                self._collect()
                frames = self._recorder.mix_final()
                if frames is not None:
                    await loop.run_in_executor(None, self._writer.write, frames)
        except Exception as exc:
            failure = failure or exc
        finally:
            await loop.run_in_executor(None, self._writer.close)
            await asyncio.gather(*(receiver.wait_closed() for _, receiver in self._receivers))
        self._result = self._recorder.result()
        if failure is not None:
            raise failure
        log.info(
            "recording closed: %.2f s of media from %s; per stream (packets, lost, late): %s",
            self._result.duration,
            self._result.media_start,
            [(s.packets, s.lost, s.late) for s in self._result.streams],
        )
        return self._result

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_write = loop.time() + self._write_interval
        while True:
            await asyncio.sleep(self._tick)
            self._collect()
            if loop.time() < next_write:
                continue
            next_write = loop.time() + self._write_interval
            frames = self._recorder.mix(time.time())
            if frames is not None:
                self._write = loop.run_in_executor(None, self._writer.write, frames)
                try:
                    await asyncio.shield(self._write)  # if cancelled, close() waits for this write
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("writing the recording failed; media is no longer recorded")
                    raise
                self._write = None

    def _collect(self) -> None:
        recorder = self._recorder
        for spec, receiver in self._receivers:
            packets = receiver.drain()
            if packets:
                recorder.add(spec.index, packets)
                recorder.stream_stats(spec.index).remote = receiver.remote
