"""A stream's decoded packets written at their timeline positions, batch by batch (sans-I/O).

One decode call per batch (a stateless codec decodes the joined payloads; a stateful one gets them in
timestamp order), then one copy per run of back-to-back packets into the :class:`media.samplebuffer.SampleBuffer`
(usually the whole batch is one run), and the runs go to the stream's :class:`media.quality.GapCounter`. A plain
batch of a table codec (G.711) skips the payload objects: :meth:`Placement.place_octets` looks its payload
octets up straight into the buffer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from media.codecs import Codec
from media.quality import GapCounter
from media.samplebuffer import SampleBuffer

__all__ = ["Placement"]

Pcm = npt.NDArray[np.int16]
Run = tuple[int, int, int]  # (position, first sample, past the last sample) in a batch's samples


class Placement:
    """Decodes and writes one stream's audio; ``paused_spans`` gives the pauses as positions, for the gaps."""

    __slots__ = ("_codec", "_decode", "_decoder", "_paused_spans", "buffer", "gaps")

    def __init__(self, codec: Codec, paused_spans: Callable[[], Sequence[tuple[int, int]]]) -> None:
        self._codec = codec
        self._decode = codec.decode
        # Stateful codecs (G.722, G.729, Opus) decode through this stream's own decoder, in timestamp order.
        self._decoder = codec.new_decoder() if codec.stateful is not None else None
        self._paused_spans = paused_spans
        self.buffer = SampleBuffer(codec.sample_rate)
        self.gaps = GapCounter()

    def place(self, payloads: list[bytes], positions: list[int]) -> None:
        """Decode the batch in one call and copy it as runs of contiguous packets."""
        if self._decoder is not None:
            self._place_stateful(payloads, positions)
            return
        joined = b"".join(payloads)
        samples = self._decode(joined)
        total = len(samples)
        size = len(joined)
        counts = list(map(len, payloads)) if total == size else [len(p) * total // size for p in payloads]
        self._write(positions, samples, counts)

    def place_octets(self, pos: int, octets: npt.NDArray[np.uint8], table: Pcm) -> None:
        """Payloads of equal length back to back from ``pos``, one row each, decoded by ``table`` (one sample
        per octet): what :meth:`place` does with them, without joining them first."""
        count = octets.size
        out = self.buffer.span(pos, count)
        # Octets index a 256-entry table: none is out of range, and "wrap" writes without a bounce buffer.
        table.take(octets, out=out.reshape(octets.shape), mode="wrap")
        self._gap_run(pos, count)

    def _place_stateful(self, payloads: list[bytes], positions: list[int]) -> None:
        """A decoder with memory needs its packets in timestamp order; each payload says how long it is."""
        assert self._decoder is not None
        order = sorted(range(len(positions)), key=positions.__getitem__)
        payloads = [payloads[i] for i in order]
        positions = [positions[i] for i in order]
        counts = [self._codec.samples_in(p) for p in payloads]
        samples = self._decoder.decode(payloads)
        expected = sum(counts)
        if len(samples) != expected:  # a decoder that returned more or less than the framing says
            fitted = np.zeros(expected, dtype=np.int16)
            fitted[: min(expected, len(samples))] = samples[:expected]
            samples = fitted
        self._write(positions, samples, counts)

    def _write(self, positions: list[int], samples: Pcm, counts: list[int]) -> None:
        first, step, count = positions[0], counts[0], len(counts)
        if (
            step > 0
            and counts.count(step) == count
            and positions == list(range(first, first + count * step, step))
        ):
            self._write_one(first, samples, count * step)  # the usual batch: equal packets back to back
            return
        runs: list[Run] = []
        run_pos = next_pos = low = high = first
        run_off = offset = 0
        for pos, size in zip(positions, counts, strict=True):
            if pos != next_pos:
                runs.append((run_pos, run_off, offset))
                high = max(high, next_pos)
                low = min(low, pos)
                run_pos = pos
                run_off = offset
            offset += size
            next_pos = pos + size
        runs.append((run_pos, run_off, offset))
        high = max(high, next_pos)
        self.buffer.write(runs, samples, low, high)
        self.gaps.record(runs, self._paused_spans())

    def _write_one(self, pos: int, samples: Pcm, count: int) -> None:
        self.buffer.write(((pos, 0, count),), samples, pos, pos + count)
        self._gap_run(pos, count)

    def _gap_run(self, pos: int, count: int) -> None:
        gaps = self.gaps
        if pos == gaps.high and gaps.low is not None:
            gaps.high = pos + count  # GapCounter.record, contiguous case
        else:
            gaps.record(((pos, 0, count),), self._paused_spans())
