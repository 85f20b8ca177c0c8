"""The pacer's fast lane: every unimpaired leg of the process as one row of numpy arrays, so that a 20 ms tick
builds all due packets with array operations and hands them to the kernel with one ``sendmmsg(2)`` per socket.

A row is made from an :class:`RtpLeg` and carries its header fields (both sources when it changes SSRC), its
frames (as an index into one bank of pre-encoded seconds), its destination and its counters. The counters go
back into the leg (:meth:`RtpLeg.absorb`) whenever the leg is read: for its sender reports, when it finishes
and when it is removed. Packets are the same as :meth:`RtpLeg.packet` builds, byte for byte.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import numpy.typing as npt

from .profile import PTIME
from .rtp_legs import RtpLeg
from .sendmmsg import BatchSender, sockaddr_in
from .tones import FRAMES, PAYLOAD_BYTES

__all__ = ["StreamTable"]

_HEADER = 12
_TICKS = round(8000 * PTIME)  # RTP timestamp units per packet (8 kHz clock: G.711 and G.722)
_INTEGERS = ("total", "next_n", "change", "seq0", "ts0", "ssrc0", "seq1", "ts1", "ssrc1", "pt", "frame", "fd")
_COUNTERS = ("sent", "errors", "rtcp_packets", "rtcp_octets")
_TIMES = ("start", "first", "last", "rtcp_next")


class StreamTable:
    def __init__(self, capacity: int = 256) -> None:
        self._legs: list[RtpLeg | None] = []
        self._rows: dict[int, int] = {}  # id(leg) → row
        self._free: list[int] = []
        self._capacity = 0
        self._sender = BatchSender()
        self._bank = np.zeros((0, FRAMES, PAYLOAD_BYTES), dtype=np.uint8)
        self._bank_rows: dict[tuple[bytes, ...], int] = {}
        self.active = np.zeros(0, dtype=bool)
        self.names = np.zeros((0, 16), dtype=np.uint8)
        self.ints: dict[str, npt.NDArray[np.int64]] = {}
        self.times: dict[str, npt.NDArray[np.float64]] = {}
        self._grow(capacity)
        self.sent = 0  # datagrams sent by the lane so far

    def __len__(self) -> int:
        return len(self._rows)

    @staticmethod
    def accepts(leg: RtpLeg, destination: tuple[str, int]) -> bool:
        """Unimpaired IPv4 legs of standard frames only; the others take the pacer's slow lane."""
        return leg.impairer is None and ":" not in destination[0] and len(leg.frames[0]) == PAYLOAD_BYTES

    def add(self, leg: RtpLeg) -> None:
        assert leg.destination is not None, "begin() the leg first"
        if not self._free:
            self._grow(self._capacity * 2)
        row = self._free.pop()
        self._rows[id(leg)] = row
        self._legs[row] = leg
        sources = leg.sources
        first, second = sources[0], sources[-1]
        values = {
            "total": leg.total,
            "next_n": leg.next_n,
            "change": leg.total if leg.change_at is None else leg.change_at,
            "seq0": first[1],
            "ts0": first[2],
            "ssrc0": first[0],
            "seq1": second[1],
            "ts1": second[2],
            "ssrc1": second[0],
            "pt": leg.payload_type,
            "frame": self._bank_row(leg.frames),
            "fd": leg.sock.fileno(),
            "sent": 0,
            "errors": 0,
            "rtcp_packets": 0,
            "rtcp_octets": 0,
        }
        for name, value in values.items():
            self.ints[name][row] = value
        self.times["start"][row] = leg.start
        self.times["first"][row] = math.nan
        self.times["last"][row] = math.nan
        self.times["rtcp_next"][row] = leg.next_rtcp
        self.names[row] = np.frombuffer(sockaddr_in(*leg.destination), dtype=np.uint8)
        self.active[row] = True

    def remove(self, leg: RtpLeg) -> bool:
        """Take a leg out (its counters go back into it); False if it is not in the lane."""
        row = self._rows.pop(id(leg), None)
        if row is None:
            return False
        self._sync(row)
        self.active[row] = False
        self._legs[row] = None
        self._free.append(row)
        return True

    def tick(self, now: float) -> list[RtpLeg]:
        """Send every due packet (several per leg after a late tick), sender reports when due; return the legs
        that have sent their last packet (removed from the lane)."""
        if not self._rows:
            return []
        ints, times = self.ints, self.times
        while True:
            due = np.flatnonzero(
                self.active
                & (ints["next_n"] < ints["total"])
                & (times["start"] + ints["next_n"] * PTIME <= now)
            )
            if due.size == 0:
                break
            self._send(due, now)
        for row in np.flatnonzero(self.active & (times["rtcp_next"] <= now)).tolist():
            reporting = self._sync(row)
            reporting.rtcp(now)
            times["rtcp_next"][row] = reporting.next_rtcp
        finished = [
            self._legs[row] for row in np.flatnonzero(self.active & (ints["next_n"] >= ints["total"]))
        ]
        for leg in finished:
            assert leg is not None
            self.remove(leg)
        return [leg for leg in finished if leg is not None]

    # -- internals ------------------------------------------------------------------------------------------
    def _send(self, due: npt.NDArray[np.intp], now: float) -> None:
        ints, times = self.ints, self.times
        n = ints["next_n"][due]
        change = ints["change"][due]
        second = n >= change
        k = np.where(second, n - change, n)  # index within the current source
        seq = (np.where(second, ints["seq1"][due], ints["seq0"][due]) + k) & 0xFFFF
        stamp = (np.where(second, ints["ts1"][due], ints["ts0"][due]) + k * _TICKS) & 0xFFFFFFFF
        ssrc = np.where(second, ints["ssrc1"][due], ints["ssrc0"][due])
        packets = np.empty((due.size, _HEADER + PAYLOAD_BYTES), dtype=np.uint8)
        packets[:, 0] = 0x80  # RFC 3550 §5.1: V=2, no padding, extension or CSRC
        packets[:, 1] = ints["pt"][due] | np.where(k == 0, 0x80, 0)  # marker: a source's first packet
        packets[:, 2:4] = _big_endian(seq, ">u2")
        packets[:, 4:8] = _big_endian(stamp, ">u4")
        packets[:, 8:12] = _big_endian(ssrc, ">u4")
        packets[:, _HEADER:] = self._bank[ints["frame"][due], n % FRAMES]
        restarted = due[second & (k == 0)]  # RFC 3550 §6.4.1: a new source's sender counts start from zero
        ints["rtcp_packets"][restarted] = 0
        ints["rtcp_octets"][restarted] = 0
        order = np.argsort(ints["fd"][due], kind="stable")
        rows, packets = due[order], packets[order]
        names = self.names[rows]
        fds = ints["fd"][rows]
        edges = [0, *(np.flatnonzero(np.diff(fds)) + 1).tolist(), rows.size]
        sent: list[npt.NDArray[np.intp]] = []
        for start, end in itertools.pairwise(edges):
            done = self._sender.send(int(fds[start]), packets[start:end], names[start:end])
            sent.append(rows[start : start + done])
            ints["errors"][rows[start + done : end]] += 1
        ok = np.concatenate(sent)
        ints["sent"][ok] += 1
        ints["rtcp_packets"][ok] += 1
        ints["rtcp_octets"][ok] += PAYLOAD_BYTES
        first = times["first"]
        first[ok[np.isnan(first[ok])]] = now
        times["last"][ok] = now
        ints["next_n"][due] += 1
        self.sent += int(ok.size)

    def _sync(self, row: int) -> RtpLeg:
        leg = self._legs[row]
        assert leg is not None
        ints, times = self.ints, self.times
        first, last = float(times["first"][row]), float(times["last"][row])
        leg.absorb(
            next_n=int(ints["next_n"][row]),
            sent=int(ints["sent"][row]),
            send_errors=int(ints["errors"][row]),
            first_sent_at=None if math.isnan(first) else first,
            last_sent_at=None if math.isnan(last) else last,
            rtcp_counts=(int(ints["rtcp_packets"][row]), int(ints["rtcp_octets"][row])),
        )
        return leg

    def _bank_row(self, frames: tuple[bytes, ...]) -> int:
        row = self._bank_rows.get(frames)
        if row is None:
            second = np.frombuffer(b"".join(frames), dtype=np.uint8).reshape(1, FRAMES, PAYLOAD_BYTES)
            self._bank = np.concatenate((self._bank, second))
            row = self._bank_rows[frames] = len(self._bank) - 1
        return row

    def _grow(self, capacity: int) -> None:
        extra = capacity - self._capacity
        self.active = np.concatenate((self.active, np.zeros(extra, dtype=bool)))
        self.names = np.concatenate((self.names, np.zeros((extra, 16), dtype=np.uint8)))
        for name in (*_INTEGERS, *_COUNTERS):
            self.ints[name] = np.concatenate(
                (self.ints.get(name, np.zeros(0, np.int64)), np.zeros(extra, np.int64))
            )
        for name in _TIMES:
            self.times[name] = np.concatenate((self.times.get(name, np.zeros(0)), np.zeros(extra)))
        self._legs.extend([None] * extra)
        self._free.extend(range(capacity - 1, self._capacity - 1, -1))
        self._capacity = capacity


def _big_endian(values: npt.NDArray[np.int64], dtype: str) -> npt.NDArray[np.uint8]:
    width = np.dtype(dtype).itemsize
    return values.astype(dtype).view(np.uint8).reshape(-1, width)
