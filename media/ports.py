"""RTP port allocation (sans-I/O): even ports for RTP, the odd port above each for RTCP (RFC 3550 §11).

Released ports go to the back of the queue, so a port is reused as late as possible and stray packets of an
ended call do not land in a new one. Binding is the receiver's job: if it fails, release and allocate again.
"""

from __future__ import annotations

from collections import deque

__all__ = ["PortPool", "PortsExhausted"]


class PortsExhausted(Exception):
    """No RTP port pair is free: refuse the call (503) rather than record it badly."""


class PortPool:
    """Even RTP ports in ``[first, last]`` whose RTCP port (+1) is also in the range."""

    __slots__ = ("_free", "_in_use", "first", "last")

    def __init__(self, first: int, last: int) -> None:
        start = first + (first & 1)
        if not 0 < first <= last <= 65535 or start + 1 > last:
            raise ValueError(f"port range {first}-{last} holds no RTP/RTCP pair")
        self.first = first
        self.last = last
        self._free: deque[int] = deque(range(start, last, 2))
        self._in_use: set[int] = set()

    @property
    def free(self) -> int:
        """RTP ports available."""
        return len(self._free)

    @property
    def in_use(self) -> int:
        return len(self._in_use)

    def allocate(self) -> int:
        """An even RTP port; its RTCP port is the next one up."""
        if not self._free:
            raise PortsExhausted(f"all {len(self._in_use)} RTP ports in {self.first}-{self.last} are in use")
        port = self._free.popleft()
        self._in_use.add(port)
        return port

    def release(self, port: int) -> None:
        if port not in self._in_use:
            raise ValueError(f"port {port} was not allocated from this pool")
        self._in_use.remove(port)
        self._free.append(port)
