"""Batched UDP reads: ``recvmmsg(2)`` into preallocated buffers, with the kernel's arrival time per datagram.

The media path does not read each datagram when it arrives. The kernel queues them on the socket, and a tick
drains each socket with one ``recvmmsg`` call per up to :data:`BATCH` datagrams. That turns about ten
event-loop wake-ups, ``recvfrom`` calls and buffer allocations per stream and tick into one system call, while
``SO_TIMESTAMP`` keeps the exact arrival time of every datagram (the timeline anchors streams and measures
jitter by it, so the time of the read would not do).

:meth:`BatchReader.read_batch` leaves the datagrams where the kernel put them: a :class:`DatagramBatch` is a
view of the reader's buffer (slots of :data:`MAX_DATAGRAM` octets, lengths, arrival times), valid until the
reader's next read, from which the timeline parses and decodes a plain batch of RTP without one Python object
per datagram. :meth:`DatagramBatch.datagrams` copies them out as ``(arrival, bytes)`` pairs for everything else.

Python's ``socket`` module has no ``recvmmsg``; it is reached through ``ctypes`` on Linux. Elsewhere
:class:`BatchReader` falls back to ``recvfrom`` in a loop, stamped with the time of the read.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import socket
import struct
import sys
import time
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "BATCH",
    "MAX_DATAGRAM",
    "BatchReader",
    "Datagram",
    "DatagramBatch",
    "address_of",
    "name_size",
    "open_udp_socket",
]

#: Datagrams read per system call; a 200 ms tick of 10 ms packets is 20.
BATCH: Final = 64
#: RTP audio fits far below this; longer datagrams arrive truncated and fail to parse as RTP.
MAX_DATAGRAM: Final = 2048

# <asm-generic/socket.h>: SO_TIMESTAMP (= SCM_TIMESTAMP) delivers a struct timeval per datagram.
_SO_TIMESTAMP: Final = 29
_MSG_DONTWAIT: Final = 0x40
_NAME_SPACE: Final = 28  # sizeof(struct sockaddr_in6), the larger of the two families
_CONTROL_SPACE: Final = 32  # CMSG_SPACE(sizeof(struct timeval)) on 64-bit Linux
_RTP_HEADER: Final = 12  # RFC 3550 §5.1: the fixed header

#: (arrival wall time, datagram)
Datagram = tuple[float, bytes]


class _IoVec(ctypes.Structure):
    _fields_ = (("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t))


class _MsgHdr(ctypes.Structure):
    _fields_ = (
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(_IoVec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    )


class _MMsgHdr(ctypes.Structure):
    _fields_ = (("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint))


_HEADER_SIZE: Final = ctypes.sizeof(_MMsgHdr)
# Unpack every datagram's timeval (after the 16-octet cmsghdr of its control slot) and msg_len in one call.
_STAMPS: Final = [struct.Struct("=" + "16xqq" * n) for n in range(BATCH + 1)]
_LENGTHS: Final = [
    struct.Struct("=" + f"{_MMsgHdr.msg_len.offset}xI{_HEADER_SIZE - _MMsgHdr.msg_len.offset - 4}x" * n)
    for n in range(BATCH + 1)
]


def _headers(count: int) -> struct.Struct:
    """The RTP header fields of ``count`` slots: first two octets, sequence number, timestamp, SSRC."""
    return struct.Struct("!" + f"HHII{MAX_DATAGRAM - _RTP_HEADER}x" * count)


_HEADERS: Final = [_headers(n) for n in range(BATCH + 1)]


@functools.lru_cache(maxsize=4096)
def _source_slot(source: bytes) -> bytes:
    return source.ljust(_NAME_SPACE, b"\0")


def _repeated(source: bytes, count: int) -> bytes:
    """The names area as the kernel leaves it when ``count`` datagrams all came from ``source``."""
    return _source_slot(source) * count


def _load_libc() -> tuple[ctypes._CFuncPtr, ctypes._CFuncPtr] | None:  # type: ignore[name-defined]
    """``recvmmsg`` and ``memmove`` of libc, called without releasing the GIL (``PyDLL``): with
    ``MSG_DONTWAIT`` neither blocks, and a release would hand the GIL to the writer thread for up to a
    switch interval at every read."""
    if not sys.platform.startswith("linux") or sys.maxsize <= 2**32:
        return None
    try:
        libc = ctypes.PyDLL(None, use_errno=True)
        recvmmsg, memmove = libc.recvmmsg, libc.memmove
    except (OSError, AttributeError):
        return None
    recvmmsg.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p)
    recvmmsg.restype = ctypes.c_int
    memmove.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
    memmove.restype = ctypes.c_void_p
    return recvmmsg, memmove


_recvmmsg, _memmove = _load_libc() or (None, None)


def open_udp_socket(host: str, port: int, *, receive_buffer: int = 256 * 1024) -> socket.socket:
    """A non-blocking UDP socket bound to ``host:port`` that stamps datagrams with their arrival time.

    Raises ``OSError`` (nothing left open) if the address is taken.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        if _recvmmsg is not None:
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMP, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def name_size(sock: socket.socket) -> int:
    """Octets of the raw source address of a datagram received on ``sock``: family, port (and flow info),
    address. ``sock.family`` is slow to read: receivers look this up once."""
    return 8 if sock.family == socket.AF_INET else 24


class DatagramBatch:
    """Datagrams of one read, in the slots of a buffer: ``count`` of them, with ``lengths`` and ``arrivals``.

    A batch from :meth:`BatchReader.read_batch` is the reader's own, overwritten by its next read: use it, or
    copy it out with :meth:`datagrams`, before reading again. ``source`` is the stream's latched address after
    the read and ``foreign`` the datagrams of the read that came from another one.
    """

    __slots__ = ("_buffer", "_copies", "_slots", "_view", "arrivals", "count", "foreign", "lengths", "source")

    def __init__(self, capacity: int) -> None:
        self._buffer = ctypes.create_string_buffer(max(1, capacity) * MAX_DATAGRAM)
        self._view = memoryview(self._buffer).cast("B")
        self._slots: npt.NDArray[np.uint8] = np.frombuffer(self._view, dtype=np.uint8).reshape(
            max(1, capacity), MAX_DATAGRAM
        )
        self._copies: list[Datagram] | None = None  # the originals of a batch made by of()
        self.count = 0
        self.lengths: Sequence[int] = ()
        self.arrivals: list[float] = []
        self.source: bytes | None = None
        self.foreign = 0

    @classmethod
    def of(cls, datagrams: Sequence[Datagram]) -> DatagramBatch:
        """A batch holding ``datagrams`` (what a closed receiver kept, test traffic). A datagram longer than
        :data:`MAX_DATAGRAM` keeps its length, and its batch never takes the RTP fast path."""
        batch = cls(len(datagrams))
        for i, (_, data) in enumerate(datagrams):
            size = min(len(data), MAX_DATAGRAM)
            batch._view[i * MAX_DATAGRAM : i * MAX_DATAGRAM + size] = data[:size]
        batch.count = len(datagrams)
        batch.lengths = tuple(len(data) for _, data in datagrams)
        batch.arrivals = [arrival for arrival, _ in datagrams]
        batch._copies = list(datagrams)
        return batch

    def datagrams(self) -> list[Datagram]:
        """``(arrival, datagram)`` pairs, copied out of the buffer."""
        if self._copies is not None:
            return list(self._copies)
        view = self._view
        return [
            (arrival, view[i * MAX_DATAGRAM : i * MAX_DATAGRAM + size].tobytes())
            for i, (arrival, size) in enumerate(zip(self.arrivals, self.lengths, strict=True))
        ]

    def headers(self) -> tuple[int, ...]:
        """Per datagram, flat: its first two octets (big-endian), then as RTP (RFC 3550 §5.1) the sequence
        number, timestamp and SSRC. Meaningful only for datagrams of at least 12 octets."""
        count = self.count
        layout = _HEADERS[count] if count <= BATCH else _headers(count)
        return layout.unpack_from(self._buffer)

    def payloads(self, length: int) -> npt.NDArray[np.uint8]:
        """Octets ``12 … 12 + length`` of every datagram (the payload of a plain RTP packet), shaped
        ``(count, length)``: a view of the buffer."""
        return self._slots[: self.count, _RTP_HEADER : _RTP_HEADER + length]


class BatchReader:
    """Reads every queued datagram of a socket; one reader serves any number of sockets, one at a time.

    Not thread-safe: the buffers are shared between calls.
    """

    __slots__ = ("_batch", "_control", "_dirty", "_headers", "_names", "_names_at", "_pristine")

    def __init__(self) -> None:
        self._batch = batch = DatagramBatch(BATCH)
        self._names = ctypes.create_string_buffer(BATCH * _NAME_SPACE)
        self._names_at = ctypes.addressof(self._names)
        self._control = ctypes.create_string_buffer(BATCH * _CONTROL_SPACE)
        vectors = (_IoVec * BATCH)()
        self._headers = (_MMsgHdr * BATCH)()
        data, control = ctypes.addressof(batch._buffer), ctypes.addressof(self._control)
        for i in range(BATCH):
            vectors[i].iov_base = data + i * MAX_DATAGRAM
            vectors[i].iov_len = MAX_DATAGRAM
            header = self._headers[i].msg_hdr
            header.msg_name = self._names_at + i * _NAME_SPACE
            header.msg_namelen = _NAME_SPACE
            header.msg_iov = ctypes.pointer(vectors[i])
            header.msg_iovlen = 1
            header.msg_control = control + i * _CONTROL_SPACE
            header.msg_controllen = _CONTROL_SPACE
        # The kernel overwrites name and control lengths of the headers it fills: those are restored before
        # the next call (``_dirty`` of them).
        self._pristine = ctypes.create_string_buffer(bytes(self._headers), ctypes.sizeof(self._headers))
        self._dirty = 0

    def read(
        self, sock: socket.socket, source: bytes | None = None
    ) -> tuple[list[Datagram], bytes | None, int]:
        """Drain ``sock``: ``(datagrams, first source address, datagrams from other addresses)``.

        Addresses are raw ``sockaddr`` bytes, compared with ``source`` (the stream's latched address, if any);
        decode one with :func:`address_of`. A socket error other than "nothing queued" ends the drain (ICMP
        errors carry no media).
        """
        received: list[Datagram] = []
        foreign = 0
        size = name_size(sock)
        while True:
            batch = self.read_batch(sock, size, source)
            received += batch.datagrams()
            source = batch.source
            foreign += batch.foreign
            if batch.count < BATCH:
                return received, source, foreign

    def read_batch(self, sock: socket.socket, size: int, source: bytes | None) -> DatagramBatch:
        """One read of up to :data:`BATCH` datagrams from ``sock`` (fewer: the socket is drained), as the
        reader's batch (see :class:`DatagramBatch`). ``size`` is :func:`name_size` of the socket and
        ``source`` the latched address, if any."""
        batch = self._batch
        if _recvmmsg is None or _memmove is None:
            return self._read_slowly(sock, source)
        fd = sock.fileno()
        headers = self._headers
        while True:
            if self._dirty:
                _memmove(headers, self._pristine, self._dirty * _HEADER_SIZE)
            count = _recvmmsg(fd, headers, BATCH, _MSG_DONTWAIT, None)
            if count > 0:
                break
            self._dirty = 0
            if count < 0 and ctypes.get_errno() not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                continue  # e.g. ECONNREFUSED queued by ICMP: the error is consumed, datagrams behind it are not
            batch.count = 0
            batch.lengths = ()
            batch.arrivals = []
            batch.source = source
            batch.foreign = 0
            return batch
        self._dirty = count
        stamps = _STAMPS[count].unpack_from(self._control)  # tv_sec, tv_usec per datagram
        batch.count = count
        batch.lengths = _LENGTHS[count].unpack_from(headers)
        batch.arrivals = [stamps[i] + stamps[i + 1] * 1e-6 for i in range(0, 2 * count, 2)]
        foreign = 0
        names = ctypes.string_at(self._names_at, count * _NAME_SPACE)
        # The common case, every datagram from the latched source, costs one comparison per batch.
        if source is None or names != _repeated(source, count):
            for i in range(count):
                name = names[i * _NAME_SPACE : i * _NAME_SPACE + size]
                if name != source:
                    if source is None:
                        source = name
                    else:
                        foreign += 1
        batch.source = source
        batch.foreign = foreign
        return batch

    def _read_slowly(self, sock: socket.socket, source: bytes | None) -> DatagramBatch:
        """Without ``recvmmsg``: ``recvfrom`` up to a batch, stamped with the time of the read."""
        received: list[Datagram] = []
        foreign = 0
        while len(received) < BATCH:
            try:
                data, address = sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                continue
            received.append((time.time(), data))
            name = _encode(address)
            if name != source:
                if source is None:
                    source = name
                else:
                    foreign += 1
        batch = self._batch
        view = batch._view
        for i, (_, data) in enumerate(received):
            view[i * MAX_DATAGRAM : i * MAX_DATAGRAM + len(data)] = data
        batch.count = len(received)
        batch.lengths = tuple(len(data) for _, data in received)
        batch.arrivals = [arrival for arrival, _ in received]
        batch.source = source
        batch.foreign = foreign
        return batch


_TEXT = b"text:"  # raw sockaddrs start with the family in host order (b"\x02\x00", b"\x0a\x00"), never this


def _encode(address: tuple[str, int] | tuple[str, int, int, int]) -> bytes:
    return _TEXT + f"{address[0]}|{address[1]}".encode()


def address_of(name: bytes) -> tuple[str, int]:
    """``(host, port)`` of a raw address returned by :meth:`BatchReader.read`.

    The raw form is the head of the ``sockaddr``: family, port and address (IPv4: 8 octets; IPv6: 24).
    """
    if name.startswith(_TEXT):
        host, number = name[len(_TEXT) :].decode().rsplit("|", 1)
        return host, int(number)
    family = int.from_bytes(name[:2], sys.byteorder)
    port = int.from_bytes(name[2:4], "big")
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, name[4:8]), port
    return socket.inet_ntop(socket.AF_INET6, name[8:24]), port
