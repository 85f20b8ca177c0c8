"""Batched UDP reads: ``recvmmsg(2)`` into preallocated buffers, with the kernel's arrival time per datagram.

The media path does not read each datagram when it arrives. The kernel queues them on the socket, and a tick
(every 100–200 ms) drains each socket with one ``recvmmsg`` call per up to :data:`BATCH` datagrams. That turns
about ten event-loop wake-ups, ``recvfrom`` calls and buffer allocations per stream and tick into one system
call, while ``SO_TIMESTAMP`` keeps the exact arrival time of every datagram (the timeline anchors streams and
measures jitter by it, so the time of the read would not do).

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
from typing import Final

__all__ = ["BATCH", "MAX_DATAGRAM", "BatchReader", "Datagram", "address_of", "open_udp_socket"]

#: Datagrams read per system call; a 200 ms tick of 10 ms packets is 20.
BATCH: Final = 64
#: RTP audio fits far below this; longer datagrams arrive truncated and fail to parse as RTP.
MAX_DATAGRAM: Final = 2048

# <asm-generic/socket.h>: SO_TIMESTAMP (= SCM_TIMESTAMP) delivers a struct timeval per datagram.
_SO_TIMESTAMP: Final = 29
_MSG_DONTWAIT: Final = 0x40
_NAME_SPACE: Final = 28  # sizeof(struct sockaddr_in6), the larger of the two families
_CONTROL_SPACE: Final = 32  # CMSG_SPACE(sizeof(struct timeval)) on 64-bit Linux

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


@functools.lru_cache(maxsize=4096)
def _source_slot(source: bytes) -> bytes:
    return source.ljust(_NAME_SPACE, b"\0")


def _repeated(source: bytes, count: int) -> bytes:
    """The names area as the kernel leaves it when ``count`` datagrams all came from ``source``."""
    return _source_slot(source) * count


def _load_recvmmsg() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    if not sys.platform.startswith("linux") or sys.maxsize <= 2**32:
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.recvmmsg
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p)
    function.restype = ctypes.c_int
    return function


_recvmmsg = _load_recvmmsg()


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


class BatchReader:
    """Reads every queued datagram of a socket; one reader serves any number of sockets, one at a time.

    Not thread-safe: the buffers are shared between calls.
    """

    __slots__ = ("_control", "_data", "_dirty", "_headers", "_names", "_pristine", "_view")

    def __init__(self) -> None:
        self._data = ctypes.create_string_buffer(BATCH * MAX_DATAGRAM)
        self._view = memoryview(self._data).cast("B")
        self._names = ctypes.create_string_buffer(BATCH * _NAME_SPACE)
        self._control = ctypes.create_string_buffer(BATCH * _CONTROL_SPACE)
        vectors = (_IoVec * BATCH)()
        self._headers = (_MMsgHdr * BATCH)()
        data, names, control = (ctypes.addressof(b) for b in (self._data, self._names, self._control))
        for i in range(BATCH):
            vectors[i].iov_base = data + i * MAX_DATAGRAM
            vectors[i].iov_len = MAX_DATAGRAM
            header = self._headers[i].msg_hdr
            header.msg_name = names + i * _NAME_SPACE
            header.msg_namelen = _NAME_SPACE
            header.msg_iov = ctypes.pointer(vectors[i])
            header.msg_iovlen = 1
            header.msg_control = control + i * _CONTROL_SPACE
            header.msg_controllen = _CONTROL_SPACE
        # The kernel overwrites name and control lengths of the headers it fills: those are restored before
        # the next call (``_dirty`` of them).
        self._pristine = bytes(self._headers)
        self._dirty = 0

    def read(
        self, sock: socket.socket, source: bytes | None = None
    ) -> tuple[list[Datagram], bytes | None, int]:
        """Drain ``sock``: ``(datagrams, first source address, datagrams from other addresses)``.

        Addresses are raw ``sockaddr`` bytes, compared with ``source`` (the stream's latched address, if any);
        decode one with :func:`address_of`. A socket error other than "nothing queued" ends the drain (ICMP
        errors carry no media).
        """
        if _recvmmsg is None:
            return self._read_slowly(sock, source)
        received: list[Datagram] = []
        foreign = 0
        fd = sock.fileno()
        headers = self._headers
        view = self._view
        size = 8 if sock.family == socket.AF_INET else 24  # family, port (and flow info), address
        while True:
            if self._dirty:
                ctypes.memmove(headers, self._pristine, self._dirty * _HEADER_SIZE)
            count = _recvmmsg(fd, headers, BATCH, _MSG_DONTWAIT, None)
            if count <= 0:
                self._dirty = 0
                if count < 0 and ctypes.get_errno() not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                    # e.g. ECONNREFUSED queued by ICMP: the error is consumed, datagrams behind it are not.
                    continue
                break
            self._dirty = count
            stamps = _STAMPS[count].unpack_from(self._control)  # tv_sec, tv_usec per datagram
            lengths = _LENGTHS[count].unpack_from(headers)
            received += [
                (
                    stamps[2 * i] + stamps[2 * i + 1] * 1e-6,
                    view[i * MAX_DATAGRAM : i * MAX_DATAGRAM + n].tobytes(),
                )
                for i, n in enumerate(lengths)
            ]
            names = self._names.raw[: count * _NAME_SPACE]
            # The common case, every datagram from the latched source, costs one comparison per batch.
            if source is None or names != _repeated(source, count):
                for i in range(count):
                    name = names[i * _NAME_SPACE : i * _NAME_SPACE + size]
                    if name != source:
                        if source is None:
                            source = name
                        else:
                            foreign += 1
            if count < BATCH:
                break
        return received, source, foreign

    def _read_slowly(
        self, sock: socket.socket, source: bytes | None
    ) -> tuple[list[Datagram], bytes | None, int]:
        received: list[Datagram] = []
        foreign = 0
        while True:
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
        return received, source, foreign


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
