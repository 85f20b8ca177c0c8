"""A mono mix of a finished multichannel recording, for listeners who want one voice track (blocking).

The channels are summed at their recorded level and saturated at the int16 limits, as a conference bridge
mixes: in a conversation one party talks at a time, so dividing by the number of channels would only make
every voice quieter, while the rare moment of loud overlap clips instead of wrapping around. The master is read
in blocks, so an hour-long eight-channel file needs a few hundred kilobytes of memory. Run it in a thread
after the call: ``await loop.run_in_executor(None, write_mono_mix, master, out)``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile

from media.writer import FlacWriter

__all__ = ["write_mono_mix"]

_BLOCK = 65536  # frames per read: 8 s at 8 kHz


def write_mono_mix(master_path: str | os.PathLike[str], out_path: str | os.PathLike[str]) -> int:
    """Write the sum of ``master_path``'s channels to ``out_path`` as mono FLAC; returns the frames written.

    A mono master is copied sample for sample. A master without frames gives no file (0). If reading or
    writing fails, the partial output is removed and the error raised.
    """
    with soundfile.SoundFile(os.fspath(master_path)) as master:
        writer = FlacWriter(out_path, 1, master.samplerate)
        try:
            total = np.zeros(_BLOCK, dtype=np.int32)
            while True:
                block = master.read(_BLOCK, dtype="int16", always_2d=True)
                count = len(block)
                if not count:
                    break
                mixed = total[:count]
                np.sum(block, axis=1, dtype=np.int32, out=mixed)
                np.clip(mixed, -32768, 32767, out=mixed)
                writer.write(mixed.astype(np.int16).reshape(count, 1))
        except BaseException:
            writer.close()
            Path(out_path).unlink(missing_ok=True)
            raise
        writer.close()
    return writer.frames
