"""DTMF tone classification of PCM, window by window, without a per-sample loop (sans-I/O).

Goertzel's algorithm computes one DFT term per frequency with a per-sample recursion; here the same terms come
from one matrix product over a whole batch. Windows last 16 ms and start every 8 ms (one block): each 8 ms block
is projected on a cos/sin basis of the eight DTMF frequencies twice, once with the phase of a window's first half
and once with that of its second half, so a window's DFT term is the sum of two rows of the product. A 16 ms
window resolves 62.5 Hz: the closest DTMF pair (697/770 Hz) stays apart even with a tone 1.5 % off nominal.

A window holds a digit when, in the manner of ITU-T Q.24 receivers:
- the strongest row (low group) and column (high group) tones are each above an absolute floor (-36 dBm0);
- twist is within limits: the row at most 8 dB above the column (normal), the column at most 4 dB above (reverse);
- each is at least 8 dB above the other tones of its group;
- the two tones carry most of the window's energy (speech and music spread theirs);
- their second harmonics are at least 10 dB down, beyond what the column tone itself leaks into the row
  harmonic's bin (2 x 697 Hz lies 58 Hz from 1336 Hz, closer than a 16 ms window separates).
Every window is first screened with bounds of the floor and tone-share tests taken from the summed power of each
group; only the few that pass (DTMF, some loud tonal sounds) go through the exact tests.

Powers are mean squares on the int16 scale: a sine of amplitude A reads A²/2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["COLUMNS", "KEYPAD", "ROWS", "ToneWindows", "WindowAnalyser"]

ROWS = (697.0, 770.0, 852.0, 941.0)  # Q.23 low group
COLUMNS = (1209.0, 1336.0, 1477.0, 1633.0)  # Q.23 high group
KEYPAD = "123A456B789C*0#D"  # row-major: KEYPAD[4 * row + column]

_TONES = np.array(ROWS + COLUMNS)
_HARMONICS = 2 * _TONES
_BLOCK_SECONDS = 0.008
_FULL_SCALE_DBM0 = 3.17  # G.711 µ-law: a full-scale sine is +3.17 dBm0 (A-law: +3.14)


def _dbm0(level: float) -> float:
    """Mean square of a sine at ``level`` dBm0 on the int16 scale."""
    amplitude = 32768.0 * 10 ** ((level - _FULL_SCALE_DBM0) / 20)
    return amplitude * amplitude / 2


def _db(value: float) -> float:
    return float(10 ** (value / 10))


_FLOOR = _dbm0(-36.0)  # per tone; Q.24 receivers answer down to about -25..-30 dBm0 per tone
_NORMAL_TWIST = _db(8.0)
_REVERSE_TWIST = _db(4.0)
_DOMINANCE = _db(8.0)
_TONE_SHARE = 0.6  # of the window's energy in the two tones (a clean pair 1.5 % off nominal gives about 0.8)
_HARMONIC = _db(-10.0)
_BLAS_ONE_THREAD = 1 << 18  # OpenBLAS runs products of up to this many multiply-adds on the calling thread


@dataclass(frozen=True, slots=True, kw_only=True)
class ToneWindows:
    """Windows ``first`` to ``end - 1`` were analysed; those listed in ``index`` (ascending) hold a digit.

    Window ``i`` covers samples ``i * hop`` to ``i * hop + 2 * hop`` counted from the first sample fed.
    """

    first: int
    end: int
    index: npt.NDArray[np.intp]
    digit: npt.NDArray[np.intp]  # into KEYPAD
    power: npt.NDArray[np.float32]  # row + column tone power (mean square)


def _basis(
    frequencies: npt.NDArray[np.float64], length: int, offset: int, rate: int
) -> npt.NDArray[np.float32]:
    """(length, 2 * len(frequencies)) cos/-sin columns, interleaved, for samples ``offset`` onwards."""
    phase = 2 * np.pi * np.outer(np.arange(offset, offset + length), frequencies) / rate
    basis = np.empty((length, 2 * frequencies.size), dtype=np.float32)
    basis[:, 0::2] = np.cos(phase)
    basis[:, 1::2] = -np.sin(phase)
    return basis


class WindowAnalyser:
    """Cuts PCM fed in any chunk sizes into 8 ms blocks and lists the 16 ms windows that hold a digit.

    Work is batched: :meth:`push` analyses once ``batch`` samples wait (a call has a fixed cost of a dozen
    array operations, which per 20 ms packet would exceed the analysis itself).
    """

    __slots__ = (
        "_basis",
        "_blocks",
        "_chunks",
        "_floor",
        "_harmonics",
        "_leak",
        "_overlap",
        "_pending",
        "_share",
        "_slice",
        "batch",
        "hop",
        "window",
    )

    def __init__(self, sample_rate: int, batch: int = 0) -> None:
        if sample_rate not in (8000, 16000):
            raise ValueError(f"DTMF detection runs at 8000 or 16000 Hz, not {sample_rate}")
        hop = self.hop = round(sample_rate * _BLOCK_SECONDS)
        self.window = 2 * hop
        self.batch = batch
        # Columns 0-15: the block as a window's first half; 16-31: as its second half.
        self._basis = np.hstack((_basis(_TONES, hop, 0, sample_rate), _basis(_TONES, hop, hop, sample_rate)))
        self._harmonics = _basis(_HARMONICS, self.window, 0, sample_rate)
        self._floor = np.float32(_FLOOR * self.window**2 / 2)  # on the |DFT|² scale of a window
        self._share = np.float32(_TONE_SHARE * self.window / 2)  # |DFT|² against the window's energy
        self._leak = _column_leak(self.window, sample_rate)
        self._slice = max(1, _BLAS_ONE_THREAD // (hop * self._basis.shape[1]))
        self._chunks: list[npt.NDArray[np.int16]] = []
        self._pending = 0
        self._overlap: npt.NDArray[np.int16] | None = None  # the last block, first half of the next window
        self._blocks = 0  # blocks completed so far

    @property
    def pending(self) -> int:
        """Samples fed but not analysed yet (a partial block, or a batch still filling)."""
        return self._pending

    def push(self, pcm: npt.NDArray[np.int16], *, force: bool = False) -> ToneWindows | None:
        """Analyse the windows completed so far once a batch waits (or if ``force``); None while it fills."""
        if pcm.size:
            self._chunks.append(pcm.astype(np.int16))  # a copy: batches outlive the caller's buffer
            self._pending += pcm.size
        count = self._pending // self.hop
        if not count or (self._pending < self.batch and not force):
            return None
        parts = self._chunks if self._overlap is None else [self._overlap, *self._chunks]
        samples = np.concatenate(parts)
        whole = samples.size - samples.size % self.hop
        self._chunks = [samples[whole:].copy()] if whole < samples.size else []
        self._pending = samples.size - whole
        first = self._blocks - (self._overlap is not None)
        self._overlap = samples[whole - self.hop : whole].copy()
        self._blocks += count
        return self._classify(first, samples[:whole].reshape(-1, self.hop))

    def reset(self) -> None:
        """Forget waiting samples and the last block (the block count goes on)."""
        self._chunks = []
        self._pending = 0
        self._overlap = None

    def _classify(self, first: int, samples: npt.NDArray[np.int16]) -> ToneWindows:
        blocks = samples.astype(np.float32)
        end = first + blocks.shape[0] - 1
        step = self._slice
        if blocks.shape[0] <= step:
            terms = blocks @ self._basis
        else:
            terms = np.concatenate(
                [blocks[i : i + step] @ self._basis for i in range(0, blocks.shape[0], step)]
            )
        spectrum = terms[:-1, :16] + terms[1:, 16:]  # re/im of each window's eight DFT terms
        spectrum *= spectrum
        groups = spectrum @ _GROUPS  # |DFT|² summed over the row tones and over the column tones
        energy = np.einsum("ij,ij->i", blocks, blocks)
        energy = energy[:-1] + energy[1:]
        # The screen, on every window: bounds of the floor and tone-share tests. Silence, noise, speech and
        # music stop here, at the cost of a dozen array operations per batch.
        candidates = np.flatnonzero(
            (np.minimum(groups[:, 0], groups[:, 1]) >= self._floor)
            & (groups[:, 0] + groups[:, 1] >= self._share * energy)
        )
        if not candidates.size:
            return ToneWindows(first=first, end=end, index=_NO_INDEX, digit=_NO_INDEX, power=_NO_POWER)
        scale = np.float32(2.0 / self.window**2)  # |DFT|² -> mean square
        p = (spectrum[candidates, 0::2] + spectrum[candidates, 1::2]) * scale
        rows, cols = p[:, :4], p[:, 4:]
        r, c = rows.argmax(axis=1), cols.argmax(axis=1)
        at = np.arange(candidates.size)
        pr, pc = rows[at, r], cols[at, c]
        mean_square = energy[candidates] / np.float32(self.window)
        ok = pr + pc >= _TONE_SHARE * mean_square
        windows = np.concatenate((blocks[candidates], blocks[candidates + 1]), axis=1)
        harmonic = windows @ self._harmonics
        harmonic *= harmonic
        harmonic = (harmonic[:, 0::2] + harmonic[:, 1::2]) * scale
        rows.sort(axis=1)
        cols.sort(axis=1)
        ok &= (pr <= pc * _NORMAL_TWIST) & (pc <= pr * _REVERSE_TWIST)
        ok &= (rows[:, 2] * _DOMINANCE <= pr) & (cols[:, 2] * _DOMINANCE <= pc)
        ok &= harmonic[at, r] <= pr * _HARMONIC + pc * self._leak[r, c]
        ok &= harmonic[at, 4 + c] <= pc * _HARMONIC
        return ToneWindows(
            first=first,
            end=end,
            index=candidates[ok] + first,
            digit=(4 * r + c)[ok],
            power=(pr + pc)[ok],
        )


def _column_leak(window: int, sample_rate: int) -> npt.NDArray[np.float32]:
    """[row, column]: the largest share of a column tone (up to 2 % off) read in the row's 2nd-harmonic bin."""
    leak = np.zeros((4, 4), dtype=np.float32)
    for r, row in enumerate(ROWS):
        for c, column in enumerate(COLUMNS):
            x = np.pi * (column * (1 + np.linspace(-0.02, 0.02, 81)) - 2 * row) / sample_rate
            gain = np.sin(window * x) / (window * np.sin(x))  # Dirichlet kernel of the window, normalised
            leak[r, c] = float(np.max(gain**2))
    return leak


_GROUPS = np.zeros((16, 2), dtype=np.float32)
_GROUPS[:8, 0] = 1.0  # re² and im² of the four row tones
_GROUPS[8:, 1] = 1.0  # and of the four column tones
_NO_INDEX = np.empty(0, dtype=np.intp)
_NO_POWER = np.empty(0, dtype=np.float32)
_NO_INDEX.flags.writeable = False
_NO_POWER.flags.writeable = False
